"""Per-field normalisation: the forms Pipedrive and the plan give one value compare equal, other values do not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration_pipeline.mapping.payload import PayloadFields
from migration_pipeline.validation.diff import matches
from migration_pipeline.validation.normalize import (
    BOOLEAN,
    CLOCK,
    DATE,
    DATETIME,
    EMAIL,
    LINK,
    LINKS,
    MONEY,
    NUMBER,
    PHONE,
    PLAIN,
    STANDARD,
    TEXT,
    Norm,
    field_norms,
    options,
)

TIER = options({"Bronze": 1, "Silver": 2, "Gold": 3})


@pytest.mark.parametrize(
    ("norm", "sent", "held"),
    [
        (EMAIL, "Ada.Lovelace@Contoso.com ", "ada.lovelace@contoso.com"),
        (PHONE, "+47 555-01 01", "+4755501 01"),
        (PHONE, "(347) 344-6961", "347.344.6961"),
        (PHONE, "call reception", " call reception "),  # no digit: compared as text
        (MONEY, 16725600, 16725600.0),
        (MONEY, 24422.684, 24422.68),
        (MONEY, {"value": 4819000.0, "currency": "usd"}, {"value": 4819000, "currency": "USD"}),  # a monetary custom field
        (MONEY, {"amount": 49000.0, "currency": "USD"}, {"amount": 49000, "currency": "USD"}),  # a lead's value
        (NUMBER, 20.0, 20),
        (NUMBER, 8.0002, "8.0002"),
        (DATETIME, "2024-05-01T10:00:00Z", "2024-05-01 10:00:00"),  # v2 against v1 (UTC)
        (DATETIME, "2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
        (DATE, "2023-12-24", "2023-12-24T00:00:00Z"),
        (CLOCK, "07:35", "07:35:00"),
        (BOOLEAN, True, "true"),
        (BOOLEAN, False, 0),
        (LINK, 5, {"value": 5, "name": "Contoso"}),  # v1 renders a linked record as an object
        (LINK, 5, "5"),
        (LINK, "F7225FD9-8393-4632-A702-9FA42C98FC4B", "f7225fd9-8393-4632-a702-9fa42c98fc4b"),
        (LINKS, ["b", "a"], ["a", "b"]),
        (TEXT, "Contoso", " Contoso "),
        (TIER, 2, "2"),  # v2 option id against v1's string
        (options({"EMEA": 5, "APAC": 8}), [8, 5], "5,8"),  # a set: v2 list against v1's "5,8"
        (STANDARD["emails"], [{"value": "A@x.com", "primary": True}], [{"value": "a@x.com", "primary": True, "label": "work"}]),
        (STANDARD["participants"], [{"person_id": 4, "primary": True}], [{"person_id": "4", "primary": True}]),
        (STANDARD["prices"], [{"currency": "EUR", "price": 82.69}], [{"currency": "EUR", "price": 82.690001, "cost": 0, "product_id": 1}]),
    ],
)
def test_the_forms_of_one_value_compare_equal(norm: Norm, sent: Any, held: Any) -> None:
    assert matches(norm(sent), norm(held))


@pytest.mark.parametrize(
    ("norm", "sent", "held"),
    [
        (EMAIL, "ada@contoso.com", "ada@contoso.org"),
        (PHONE, "+47 555 0101", "47 555 0101"),  # the leading + is part of the number
        (PHONE, "call reception", "n/a"),
        (MONEY, 100.0, 100.01),
        (MONEY, {"value": 100, "currency": "USD"}, {"value": 100, "currency": "EUR"}),
        (DATETIME, "2024-05-01T10:00:00Z", "2024-05-01 12:00:00"),  # v1 times are UTC, not local
        (DATE, "2023-12-24", "2023-12-25"),
        (BOOLEAN, True, False),
        (LINK, 5, 6),
        (TIER, 1, 3),
        (STANDARD["participants"], [{"person_id": 4}, {"person_id": 5}], [{"person_id": 4}]),
        (TEXT, "Contoso", "contoso"),  # case is part of a name
    ],
)
def test_other_values_differ(norm: Norm, sent: Any, held: Any) -> None:
    assert not matches(norm(sent), norm(held))


def test_options_show_labels_and_unknown_ids_stay_visible() -> None:
    assert TIER(3) == "Gold"
    assert TIER(9) == "#9"
    assert options({"EMEA": 5, "APAC": 8})([8, 5]) == ["APAC", "EMEA"]


def test_empty_values_are_none_on_both_sides() -> None:
    for norm in (PLAIN, TEXT, EMAIL, PHONE, MONEY, NUMBER, DATETIME, DATE, LINK, TIER, STANDARD["emails"]):
        assert norm(None) is None and norm("  ") is None and norm(float("nan")) is None


def test_field_norms_give_custom_fields_their_types_rule_by_key_and_standard_option_fields_their_labels() -> None:
    fields = PayloadFields(
        codes={"Main Phone": "a" * 40, "Customer Tier": "b" * 40, "Annual Revenue": "c" * 40, "Primary Contact": "d" * 40},
        types={"Main Phone": "phone", "Customer Tier": "enum", "Annual Revenue": "monetary", "Primary Contact": "people"},
        options={"Customer Tier": {"Bronze": 1, "Gold": 3}, "industry": {"Retail": 40}},
    )
    norms = field_norms(fields, {"stage_id": {"Sales/Won": 7}})
    assert norms["a" * 40].name == "phone" and norms["c" * 40].name == "money" and norms["d" * 40].name == "link"
    assert norms["b" * 40](3) == "Gold"
    assert norms["industry"](40) == "Retail"
    assert norms["stage_id"](7) == "Sales/Won"
    assert norms["owner_id"].name == "link" and norms["emails"]("x") == ["x"]


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_every_normaliser_is_idempotent_and_matches_its_own_output(value: Any) -> None:
    for norm in (PLAIN, TEXT, EMAIL, PHONE, MONEY, NUMBER, DATETIME, DATE, CLOCK, BOOLEAN, LINK, STANDARD["emails"], STANDARD["prices"]):
        once = norm(value)
        assert norm(once) == once, norm.name
        assert matches(once, norm(value)), norm.name


@given(st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_a_moment_in_any_zone_and_format_is_the_same_utc_moment(moment: Any) -> None:
    utc = moment.astimezone(UTC).replace(microsecond=0)
    assert DATETIME(moment.replace(microsecond=0).isoformat()) == DATETIME(utc.strftime("%Y-%m-%d %H:%M:%S"))
