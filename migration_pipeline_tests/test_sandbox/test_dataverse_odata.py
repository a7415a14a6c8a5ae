"""Pure OData parsing and evaluation: $filter, $select, $orderby, $expand, Prefer, paging tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migration_pipeline.sandbox.dataverse.errors import DataverseError
from migration_pipeline.sandbox.dataverse.evaluate import Columns, after_mask, comparable, filter_mask, sort_positions
from migration_pipeline.sandbox.dataverse.odata import (
    BoolOp,
    Call,
    Comparison,
    Literal,
    Not,
    OrderKey,
    Property,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_path,
    parse_prefer,
    parse_select,
)
from migration_pipeline.sandbox.dataverse.paging import PageCookie, decode_deltatoken, decode_skiptoken, encode_deltatoken, encode_skiptoken


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name eq 'Contoso'", Comparison("eq", Property("name"), Literal("string", "Contoso"))),
        ("name eq 'O''Brien'", Comparison("eq", Property("name"), Literal("string", "O'Brien"))),
        ("numberofemployees gt 50", Comparison("gt", Property("numberofemployees"), Literal("int", 50))),
        ("revenue le -1.5", Comparison("le", Property("revenue"), Literal("decimal", -1.5))),
        ("revenue ge 10m", Comparison("ge", Property("revenue"), Literal("decimal", 10.0))),
        ("accountnumber eq null", Comparison("eq", Property("accountnumber"), Literal("null", None))),
        ("donotemail ne true", Comparison("ne", Property("donotemail"), Literal("bool", True))),
        (
            "_parentaccountid_value eq 13D588DF-F28F-4A18-9444-D21145AFA75D",
            Comparison("eq", Property("_parentaccountid_value"), Literal("guid", "13d588df-f28f-4a18-9444-d21145afa75d")),
        ),
        (
            "modifiedon ge 2024-01-01T00:00:00Z",
            Comparison("ge", Property("modifiedon"), Literal("datetime", datetime(2024, 1, 1, tzinfo=UTC))),
        ),
        (
            "modifiedon lt 2024-01-01T02:00:00+02:00",
            Comparison("lt", Property("modifiedon"), Literal("datetime", datetime(2024, 1, 1, tzinfo=UTC))),
        ),
        ("new_founded eq 1999-12-31", Comparison("eq", Property("new_founded"), Literal("date", date(1999, 12, 31)))),
        ("contains(name,'sample')", Call("contains", Property("name"), Literal("string", "sample"))),
        ("startswith(name, 'A')", Call("startswith", Property("name"), Literal("string", "A"))),
        ("not endswith(name,'x')", Not(Call("endswith", Property("name"), Literal("string", "x")))),
        (
            "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'",
            Comparison("eq", Property("AttributeType"), Literal("enum", "Picklist", "Microsoft.Dynamics.CRM.AttributeTypeCode")),
        ),
        ("RequiredLevel/Value eq 'None'", Comparison("eq", Property("RequiredLevel/Value"), Literal("string", "None"))),
        ("50 lt numberofemployees", Comparison("lt", Literal("int", 50), Property("numberofemployees"))),
    ],
)
def test_filter_literals_and_predicates_parse(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a = Comparison("eq", Property("a"), Literal("int", 1))
    b = Comparison("eq", Property("b"), Literal("int", 2))
    c = Comparison("eq", Property("c"), Literal("int", 3))
    assert parse_filter("a eq 1 or b eq 2 and c eq 3") == BoolOp("or", a, BoolOp("and", b, c))
    assert parse_filter("(a eq 1 or b eq 2) and c eq 3") == BoolOp("and", BoolOp("or", a, b), c)
    assert parse_filter("not (a eq 1) and b eq 2") == BoolOp("and", Not(a), b)


@pytest.mark.parametrize(
    "text",
    ["", "name eq", "name = 'x'", "name eq 'unterminated", "(name eq 'x'", "name eq 'x' and", "1 eq 1", "contains(name, 5)", "name eq 'x' 'y'", "name lk 'x'"],
)
def test_malformed_filters_are_400(text: str) -> None:
    with pytest.raises(DataverseError) as raised:
        parse_filter(text)
    assert raised.value.status == 400 and raised.value.code == "0x80060888"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_string_literal_round_trips_through_quote_doubling(value: str) -> None:
    quoted = "'" + value.replace("'", "''") + "'"
    assert parse_filter(f"name eq {quoted}") == Comparison("eq", Property("name"), Literal("string", value))


def test_select_orderby_expand_and_paths() -> None:
    assert parse_select("name, revenue,name") == ["name", "revenue"]
    assert parse_orderby("name desc, createdon") == [OrderKey("name", True), OrderKey("createdon")]
    expand = parse_expand("OptionSet,Attributes($select=LogicalName,AttributeType;$filter=IsCustomAttribute eq true)")
    assert expand[0].name == "OptionSet" and expand[1].options == {"$select": "LogicalName,AttributeType", "$filter": "IsCustomAttribute eq true"}
    segments = parse_path("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata")
    assert [(s.name, s.key) for s in segments] == [
        ("EntityDefinitions", "LogicalName='account'"),
        ("Attributes", None),
        ("Microsoft.Dynamics.CRM.StringAttributeMetadata", None),
    ]
    for bad in ("name,,x", "name desc asc"):
        with pytest.raises(DataverseError):
            parse_orderby(bad) if " " in bad else parse_select(bad)


def test_prefer_header_parsing_and_annotation_matching() -> None:
    preferences = parse_prefer(['odata.include-annotations="OData.Community.Display.V1.*,Microsoft.Dynamics.CRM.lookuplogicalname", odata.maxpagesize=10'])
    assert preferences.max_page_size == 10 and not preferences.track_changes
    assert preferences.wants("OData.Community.Display.V1.FormattedValue")
    assert preferences.wants("Microsoft.Dynamics.CRM.lookuplogicalname")
    assert not preferences.wants("Microsoft.Dynamics.CRM.associatednavigationproperty")
    assert parse_prefer(["odata.track-changes"]).track_changes
    assert parse_prefer(['odata.include-annotations="*"']).wants("anything")
    with pytest.raises(DataverseError):
        parse_prefer(["odata.maxpagesize=0"])


def _columns(frame: pd.DataFrame, kinds: dict[str, str]) -> Columns:
    return Columns(kinds, lambda name: comparable(frame[name], kinds[name]), len(frame), "test")  # type: ignore[arg-type]


FRAME = pd.DataFrame(
    {
        "name": pd.array(["Alpha", "beta", None, "Gamma"], dtype="str"),
        "n": pd.array([1, None, 3, 4], dtype="Int64"),
        "at": pd.array(["2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z", None, "2023-12-31T23:59:59Z"], dtype="str"),
        "flag": pd.array([True, False, None, True], dtype="boolean"),
    }
)
KINDS = {"name": "string", "n": "int", "at": "datetime", "flag": "bool"}


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("name eq 'alpha'", [0]),  # case-insensitive, like the default SQL collation
        ("name ne 'alpha'", [1, 3]),  # null is neither equal nor unequal
        ("name eq null", [2]),
        ("n gt 1", [2, 3]),
        ("n ge 1 and n lt 4", [0, 2]),
        ("not (n eq 1)", [1, 2, 3]),
        ("at ge 2024-01-01T00:00:00Z", [0, 1]),
        ("at lt 2024-01-01", [3]),
        ("flag eq true or n eq null", [0, 1, 3]),
        ("contains(name,'MM')", [3]),
        ("startswith(name,'b') or endswith(name,'A')", [0, 1, 3]),
    ],
)
def test_filter_masks(text: str, rows: list[int]) -> None:
    assert np.flatnonzero(filter_mask(parse_filter(text), _columns(FRAME, KINDS))).tolist() == rows


@pytest.mark.parametrize("text", ["name eq 5", "n eq 'x'", "flag eq 1", "at eq 'yesterday'", "contains(n,'1')", "missing eq 1"])
def test_incompatible_or_unknown_operands_are_400(text: str) -> None:
    with pytest.raises(DataverseError) as raised:
        filter_mask(parse_filter(text), _columns(FRAME, KINDS))
    assert raised.value.status == 400


def test_sort_positions_put_nulls_lowest_in_both_directions() -> None:
    values = pd.Series([3, None, 1, 2], dtype="Int64")
    assert sort_positions([(values, False)]).tolist() == [1, 2, 3, 0]
    assert sort_positions([(values, True)]).tolist() == [0, 3, 2, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), st.sampled_from("abc"))), min_size=1, max_size=30),
    st.booleans(),
    st.booleans(),
)
def test_keyset_after_mask_continues_exactly_where_the_sort_left_off(rows: list[tuple[int | None, str | None]], desc1: bool, desc2: bool) -> None:
    """For every cut point, 'rows after the cut row' is exactly the tail of the sorted order."""
    frame = pd.DataFrame({"a": pd.array([r[0] for r in rows], dtype="Int64"), "b": pd.array([r[1] for r in rows], dtype="str"), "pk": range(len(rows))})
    keys = [(frame["a"], desc1), (frame["b"], desc2), (frame["pk"], False)]
    order = sort_positions(keys).tolist()
    for cut, row in enumerate(order):
        last = [None if pd.isna(frame[c].iloc[row]) else frame[c].iloc[row] for c in ("a", "b", "pk")]
        after = set(np.flatnonzero(after_mask(keys, last)).tolist())
        assert after == set(order[cut + 1 :])


def test_skiptoken_round_trip_and_mismatch() -> None:
    kinds = {"name": "string", "accountid": "guid", "n": "int", "at": "datetime"}
    cookie = PageCookie(3, (("name", "o'brien <&>"), ("n", None), ("at", pd.Timestamp("2024-01-01T00:00:00Z")), ("accountid", "ab-cd")), True, 42)
    text = encode_skiptoken(cookie, kinds)  # type: ignore[arg-type]
    assert text.startswith('<cookie pagenumber="3" pagingcookie="') and 'istracking="True"' in text
    assert decode_skiptoken(text, ["name", "n", "at", "accountid"], kinds) == cookie  # type: ignore[arg-type]
    with pytest.raises(DataverseError):
        decode_skiptoken(text, ["accountid"], kinds)  # type: ignore[arg-type]
    with pytest.raises(DataverseError):
        decode_skiptoken("garbage", ["accountid"], kinds)  # type: ignore[arg-type]


def test_deltatoken_format() -> None:
    at = datetime(2017, 8, 22, 8, 10, 44, tzinfo=UTC)
    assert encode_deltatoken(919042, at) == "919042!08/22/2017 08:10:44"
    assert decode_deltatoken("919042!08/22/2017 08:10:44") == (919042, at)
    with pytest.raises(DataverseError):
        decode_deltatoken("nonsense")
