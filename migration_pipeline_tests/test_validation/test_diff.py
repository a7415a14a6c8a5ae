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


def test_each_field_takes_its_norm_by_key_and_a_difference_names_the_rule() -> None:
    from migration_pipeline.validation.normalize import EMAIL, PHONE, options

    norms = {"def456": PHONE, "email": EMAIL, "tier": options({"Bronze": 1, "Gold": 3})}
    body = {"email": "Ada@Contoso.com", "tier": 1, "custom_fields": {"def456": "+47 555 01"}}
    same = {"id": 10, "email": " ada@contoso.com", "tier": "1", "custom_fields": {"def456": "+4755501"}}
    assert diff_object("persons", [("s1", "10", body)], {"10": same}, NAMES, norms=norms).clean
    changed = {**same, "tier": 3, "custom_fields": {"def456": "+47 555 02"}}
    rows = diff_object("persons", [("s1", "10", body)], {"10": changed}, NAMES, norms=norms).differences
    assert rows[["field", "expected", "actual", "rule"]].values.tolist() == [
        ["tier", "Bronze", "Gold", "option"],  # labels, not ids
        ["Main Phone", "+4755501", "+4755502", "phone"],  # the custom field by name
    ]


def test_a_record_carrying_a_dynamics_id_no_id_map_row_points_at_is_a_duplicate() -> None:
    from migration_pipeline.validation.diff import DUPLICATE

    result = diff_object("organizations", [("s1", "10", BODY)], {"10": held()}, NAMES, duplicates=[("s1", "11", "10"), ("s9", "12", None)])
    assert result.differences[["source_id", "pipedrive_id", "field", "expected"]].values.tolist() == [
        ["s1", "11", DUPLICATE, "only record 10"], ["s9", "12", DUPLICATE, "no record"],
    ]
    assert result.summary.set_index("field").loc[DUPLICATE, ["compared", "differing"]].tolist() == [2, 2]
    assert result.summary.set_index("field").loc[RECORD, "equal"] == 1


def test_a_check_of_one_field_on_records_another_diff_counts_counts_no_record() -> None:
    result = diff_object("deal_archive", [("s1", "10", {"is_archived": True})], {"10": {"is_archived": False}}, {}, records=False)
    assert set(result.summary["field"]) == {"is_archived"}
    assert result.differences["field"].tolist() == ["is_archived"]
