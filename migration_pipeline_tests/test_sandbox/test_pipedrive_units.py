"""Pure parts of the Pipedrive simulator: the cost table, limiter, schema walker, value typing."""

from __future__ import annotations

from typing import Any

import pytest

from migration_pipeline.sandbox.dataset import PipedrivePlan
from migration_pipeline.sandbox.pipedrive.costs import CostTable
from migration_pipeline.sandbox.pipedrive.fields import FieldDef, References, check_value, from_v1, to_v1
from migration_pipeline.sandbox.pipedrive.ratelimit import RateLimiter, Verdict
from migration_pipeline.sandbox.pipedrive.responses import conform, response_schema
from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed, validate_body, validate_query
from migration_pipeline.sandbox.pipedrive.spec import load_spec


@pytest.mark.parametrize(("version", "method", "path", "cost"), [
    ("v2", "POST", "/deals", 5),
    ("v2", "GET", "/deals", 10),
    ("v2", "GET", "/persons", 10),
    ("v2", "GET", "/deals/17", 1),
    ("v2", "GET", "/deals/search", 20),
    ("v2", "GET", "/itemSearch", 20),
    ("v2", "POST", "/deals/17/products/bulk", 25),
    ("v2", "GET", "/deals/products", 10),
    ("v2", "DELETE", "/organizations/3", 3),
    ("v2", "GET", "/pipelines", 5),
    ("v1", "POST", "/notes", 10),
    ("v1", "GET", "/leadSources", 2),
])
def test_costs_come_from_the_spec(version: Any, method: str, path: str, cost: int) -> None:
    operation = CostTable.from_specs().match(version, method, path)
    assert operation is not None and operation.cost == cost


def test_unknown_paths_have_no_operation() -> None:
    assert CostTable.from_specs().match("v2", "GET", "/nothing/here") is None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_window_budget_and_block() -> None:
    clock = Clock()
    limiter = RateLimiter(PipedrivePlan(daily_token_budget=100, burst_per_2s=2), clock, block_seconds=10)
    assert limiter.admit("t", 10).verdict is Verdict.OK
    clock.now += 0.5
    second = limiter.admit("t", 10)
    assert second.verdict is Verdict.OK and second.remaining == 0 and second.reset_s == 2
    clock.now += 1.0
    burst = limiter.admit("t", 10)
    assert burst.verdict is Verdict.BURST and burst.retry_after_s == 1
    clock.now += 1.0
    assert limiter.admit("t", 85).verdict is Verdict.BUDGET  # 20 spent, 85 more would pass 100
    assert limiter.admit("t", 80).verdict is Verdict.OK
    assert limiter.tokens_used == 100 and limiter.daily_remaining() == 0
    for _ in range(7):
        verdict = limiter.admit("t", 1).verdict
    assert verdict is Verdict.BLOCKED


def test_schema_walker_rejects_unknown_keys_and_loose_types() -> None:
    validate_body("v2", "POST", "/deals", {"title": "x", "value": 1.5, "label_ids": [1]})
    for body, problem in [({"title": "x", "foo": 1}, "foo: Parameter 'foo' is not allowed"),
                          ({"title": 5}, "title: Expected 'string'"),
                          ({"title": "x", "label_ids": ["1"]}, "label_ids.0: Expected 'number'"),
                          ({"title": "x", "value": True}, "value: Expected 'number'"),
                          ({"title": "x", "probability": None, "owner_id": None}, "owner_id: Value must not be null")]:
        with pytest.raises(ValidationFailed, match=problem):
            validate_body("v2", "POST", "/deals", body)


def test_query_validation_parses_and_refuses() -> None:
    assert validate_query("v2", "GET", "/deals", {"limit": "5", "status": "open,won"}) == {"limit": 5,
                                                                                            "status": "open,won"}
    with pytest.raises(ValidationFailed, match="limit"):
        validate_query("v2", "GET", "/deals", {"limit": "five"})
    with pytest.raises(ValidationFailed, match="status"):
        validate_query("v2", "GET", "/deals", {"status": "pending"})
    with pytest.raises(ValidationFailed, match="term"):
        validate_query("v2", "GET", "/persons/search", {})


REFS = References(active_user=lambda i: i == 1, active_org=lambda i: i == 1, active_person=lambda i: i == 1,
                  currency=lambda c: c == "EUR")


def _field(kind: str, options: list[int] | None = None) -> FieldDef:
    return FieldDef(id=1, entity="deal", field_code="a" * 40, field_type=kind, field_name="F", is_custom_field=True,
                    add_time="2026-01-01T00:00:00Z",
                    options=[{"id": i, "label": str(i)} for i in options] if options else None)


@pytest.mark.parametrize(("kind", "value", "stored"), [
    ("varchar", "x", "x"),
    ("double", 3, 3),
    ("monetary", {"value": 1.5, "currency": "EUR"}, {"value": 1.5, "currency": "EUR"}),
    ("enum", 2, 2),
    ("set", [3, 2, 3], [2, 3]),
    ("date", "2024-02-29", "2024-02-29"),
    ("time", {"value": "09:30"}, {"value": "09:30:00", "timezone_name": None}),
    ("user", 1, 1),
    ("varchar", None, None),
])
def test_typed_values_accepted(kind: str, value: Any, stored: Any) -> None:
    assert check_value(_field(kind, [2, 3]), value, REFS, "v") == stored


@pytest.mark.parametrize(("kind", "value"), [
    ("double", "3"), ("double", True), ("enum", "2"), ("enum", 9), ("set", []), ("set", "2,3"),
    ("date", "2024-02-30"), ("monetary", {"value": 1}), ("user", 2), ("address", {"value": "x", "planet": "Mars"}),
])
def test_typed_values_refused(kind: str, value: Any) -> None:
    with pytest.raises(ValidationFailed):
        check_value(_field(kind, [2, 3]), value, REFS, "v")


def test_v1_value_round_trip() -> None:
    money, choice = _field("monetary"), _field("set", [2, 3])
    choice.field_code = "b" * 40
    definitions = {money.field_code: money, choice.field_code: choice}
    values = from_v1(definitions, {money.field_code: 10, f"{money.field_code}_currency": "EUR",
                                   choice.field_code: "2,3"}, REFS)
    assert values == {money.field_code: {"value": 10, "currency": "EUR"}, choice.field_code: [2, 3]}
    assert to_v1(definitions, values) == {money.field_code: 10, f"{money.field_code}_currency": "EUR",
                                          choice.field_code: "2,3"}


def test_conform_drops_nulls_the_spec_does_not_allow() -> None:
    schema = response_schema("v2", "GET", "/deals/{id}", 200)
    body = conform(load_spec("v2"), schema, {"success": True, "data": {"id": 1, "person_id": None,
                                                                        "probability": None}})
    assert body == {"success": True, "data": {"id": 1, "probability": None}}
