"""The field-level diff on hand-made records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from migration_pipeline.validation.diff import RECORD, diff_object, matches

BODY = {
    "name": "Contoso",
    "owner_id": 7,
    "address": {"value": "1 Main St, Oslo", "locality": "Oslo"},
    "custom_fields": {"abc123": "CRM-1", "def456": "+47 555"},
}
NAMES = {"abc123": "Dynamics ID", "def456": "Main Phone"}


def held(**changes: object) -> dict[str, object]:
    record = {
        "id": 10,
        "name": "Contoso ",
        "owner_id": 7,
        "address": {"value": "1 Main St, Oslo", "locality": "Oslo", "country": None, "route": None},
        "custom_fields": {"abc123": "CRM-1", "def456": "+47 555", "zzz": None},
        "is_deleted": False,
    }
    record.update(changes)
    return record


def test_identical_after_normalisation_is_clean() -> None:
    result = diff_object("organizations", [("s1", "10", BODY)], {"10": held()}, NAMES)
    assert result.clean
    assert set(result.summary["field"]) == {RECORD, "name", "owner_id", "address", "Dynamics ID", "Main Phone"}
    assert (result.summary["equal"] == 1).all()


def test_changed_custom_field_is_reported_by_name() -> None:
    record = held(custom_fields={"abc123": "CRM-1", "def456": "+47 999"})
    result = diff_object("organizations", [("s1", "10", BODY)], {"10": record}, NAMES)
    assert result.differences[["source_id", "pipedrive_id", "field", "expected", "actual"]].values.tolist() == [
        ["s1", "10", "Main Phone", "+47 555", "+47 999"]
    ]


def test_deleted_record_is_missing() -> None:
    result = diff_object("organizations", [("s1", "10", BODY)], {"10": held(is_deleted=True)}, NAMES)
    assert result.differences["field"].tolist() == [RECORD]
    assert result.summary.set_index("field").loc[RECORD, "missing"] == 1


def test_owner_change_is_reported() -> None:
    result = diff_object("organizations", [("s1", "10", BODY)], {"10": held(owner_id=8)}, NAMES)
    assert result.differences["field"].tolist() == ["owner_id"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_every_value_matches_itself(value: object) -> None:
    assert matches(value, value)


def test_lists_of_objects_match_item_by_item_in_any_order_with_pipedrives_extra_parts() -> None:
    wrote = [{"currency": "EUR", "price": 82.69}, {"currency": "USD", "price": 89.88, "cost": 49.2}]
    held = [{"currency": "USD", "price": 89.88, "cost": 49.2, "product_id": 1}, {"currency": "EUR", "price": 82.69, "cost": 0, "product_id": 1}]
    assert matches(wrote, held)
    assert not matches(wrote, held[:1])  # one missing
    assert not matches(wrote, [{**held[0]}, {**held[1], "price": 80.0}])  # one price differs
