"""The mapping workbook's models: the shipped default is valid, a malformed file names file, line and entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_pipeline.errors import MappingError
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, load_object_map

DEFAULTS = Path(__file__).parents[2] / "migration_pipeline" / "mapping" / "defaults"


def test_default_organization_map_is_valid() -> None:
    object_map = load_object_map(DEFAULTS / "organizations.yaml")
    assert object_map.object == "organizations"
    assert object_map.custom_fields[0].name == DYNAMICS_ID_FIELD
    assert object_map.source_columns[0] == "accountid"


BAD_ENTRY = """object: organizations
source_entity_set: accounts
source_key: accountid
fields:
  - source: name
    target: name
  - source: accountnumber
    custom_field: {name: Account Number, field_type: varchr}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BAD_ENTRY, ["line 8", "fields[1].custom_field.field_type", "'accountnumber'"]),
        (BAD_ENTRY.replace("    target: name\n", ""), ["fields[0]", "exactly one of `target`"]),
        ("object: [unclosed\n", ["not valid YAML", "line"]),
        (BAD_ENTRY.replace("source_key: accountid\n", ""), ["source_key", "Field required"]),
    ],
)
def test_malformed_file_names_file_line_and_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "organizations.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as caught:
        load_object_map(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_missing_file_says_to_run_plan(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="migrate plan"):
        load_object_map(tmp_path / "nope.yaml")
