"""The token-cost table: lookups of concrete paths, and that it still matches the specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_pipeline.pipedrive import costs
from migration_pipeline.pipedrive._cost_table import TOKEN_COSTS

SPECS_DIR = Path("/work/shared/specs")


@pytest.mark.parametrize(
    ("version", "method", "path", "template", "cost"),
    [
        ("v2", "POST", "/deals/123/products/bulk", "/deals/{id}/products/bulk", 25),
        ("v2", "POST", "deals/123/products", "/deals/{id}/products", 5),
        ("v2", "GET", "/deals/products", "/deals/products", 10),  # literal beats /deals/{id}
        ("v2", "GET", "/deals/42", "/deals/{id}", 1),
        ("v2", "GET", "/deals", "/deals", 10),
        ("v2", "post", "/deals", "/deals", 5),
        ("v2", "PATCH", "/persons/7", "/persons/{id}", 5),
        ("v2", "DELETE", "/organizations/7", "/organizations/{id}", 3),
        ("v2", "GET", "/persons/search", "/persons/search", 20),
        ("v2", "GET", "/pipelines", "/pipelines", 5),
        ("v2", "POST", "/dealFields/abc123/options", "/dealFields/{field_code}/options", 5),
        ("v1", "POST", "/leads", "/leads", 10),
        ("v1", "PATCH", "/leads/0c7f6a2e-1111-2222-3333-444455556666", "/leads/{id}", 10),
        ("v1", "GET", "/leads/archived", "/leads/archived", 40),
        ("v1", "POST", "/files", "/files", 10),
        ("v1", "GET", "/users", "/users", 20),
        ("v1", "GET", "/users/find", "/users/find", 40),
        ("v1", "PUT", "/notes/9", "/notes/{id}", 10),
    ],
)
def test_concrete_paths_find_their_template_and_price(version, method, path, template, cost) -> None:
    operation = costs.operation(version, method, path)
    assert (operation.template, operation.cost) == (template, cost)


def test_unlisted_paths_are_priced_at_the_method_fallback_under_a_generalised_template() -> None:
    operation = costs.operation("v2", "GET", "/widgets/123/parts/0c7f6a2e-1111-2222-3333-444455556666")
    assert operation.template == "/widgets/{id}/parts/{id}"
    assert operation.cost == costs.FALLBACK_COSTS["v2"]["GET"]
    assert costs.lookup("v2", "GET", "/widgets/123") is None
    # v1 CRUD of deals is out of support and gone from the current spec.
    assert costs.lookup("v1", "POST", "/deals") is None


def test_operation_names_objects_and_search_flags() -> None:
    bulk = costs.operation("v2", "POST", "/deals/5/products/bulk")
    assert bulk.name == "POST /api/v2/deals/{id}/products/bulk"
    assert bulk.object == "deals/products/bulk"
    assert costs.operation("v2", "GET", "/deals/5").object == "deals"
    assert costs.operation("v2", "GET", "/persons/search").is_search
    assert costs.operation("v2", "GET", "/itemSearch/field").is_search
    assert not costs.operation("v2", "GET", "/persons").is_search
    assert not costs.operation("v2", "GET", "/deals/5").is_search


@pytest.mark.skipif(not SPECS_DIR.is_dir(), reason="the Pipedrive specs folder is not available")
def test_the_shipped_table_is_what_the_specs_generate() -> None:
    table = costs.costs_from_specs(SPECS_DIR)
    assert table == TOKEN_COSTS
    generated = costs.render_table(table)
    assert generated == Path(costs.__file__).with_name("_cost_table.py").read_text(encoding="utf-8")
