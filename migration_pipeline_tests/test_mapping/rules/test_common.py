"""The shared checks: emails, phones, owners, times, contact lists, links."""

from __future__ import annotations

import pandas as pd
import pytest

from migration_pipeline.mapping import transforms
from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import Links, Outcomes
from migration_pipeline_tests.test_mapping.rules.frames import context

EMAILS = ["a@b.co", ".a@b.co", "a.@b.co", "a..b@c.de", "a@b..de", "A.B+c@Ex-ample.COM", "a@b", "a b@c.de", "jo@@x.com",
          "jo at x.com", "@x.com", "x@y.com..", " x@y.org ", "o'brien@x.ie", "", None]


def test_emails_are_checked_and_trimmed_and_the_bad_ones_reported() -> None:
    carried = common.email(pd.Series(EMAILS, dtype=object))
    kept = {raw: value for raw, value in zip(EMAILS, carried.values, strict=True)}
    assert (kept[" x@y.org "], kept["A.B+c@Ex-ample.COM"], kept["o'brien@x.ie"]) == ("x@y.org", "A.B+c@Ex-ample.COM", "o'brien@x.ie")
    bad = [".a@b.co", "a.@b.co", "a..b@c.de", "a@b..de", "a@b", "a b@c.de", "jo@@x.com", "jo at x.com", "@x.com", "x@y.com.."]
    assert all(kept[raw] is None for raw in bad)
    problems = dict(zip(EMAILS[:-1], carried.problems[:-1], strict=True))
    assert all(problems[raw] == "not a valid email address" for raw in bad)
    assert problems[""] is None and carried.problems.iloc[-1] is None  # empty is absent, not wrong


@pytest.mark.parametrize(("raw", "value"), [
    ("+44 20 1234 5678", "+44 20 1234 5678"),
    ("  (201)  555-0123 ", "(201) 555-0123"),
    ("0049 30 1234567", "+49 30 1234567"),
    ("00 44 20 1234 5678", "+44 20 1234 5678"),
    ("+49 (0)30 12345678", "+49 30 12345678"),
    ("+1-201-555-0123 ext. 12", "+1-201-555-0123 ext. 12"),
    ("201.555.0123 x123", "201.555.0123 ext. 123"),
    ("555-1234 Extension 12", "555-1234 ext. 12"),
    ("12345 x9", None),  # the extension's digits do not count towards the number's six
    ("n/a", None), ("call reception", None), ("12", None), ("+", None), ("0000", None), ("1234567890123456", None),
])
def test_phone_normalisation(raw: str, value: str | None) -> None:
    carried = common.phone(pd.Series([raw], dtype=object))
    assert (None if pd.isna(carried.values.iloc[0]) else carried.values.iloc[0]) == value
    assert (carried.problems.iloc[0] is not None) == (value is None)


def test_owners_through_the_map_then_the_fallback_and_reported_without_one() -> None:
    ids = pd.Series(["U1", "team-7", None], dtype=object)
    assert common.owner(ids, context()).values.tolist() == [11, 99, 99]
    without = common.owner(ids, context(fallback_owner_id=None))
    assert without.values.iloc[0] == 11 and pd.isna(without.values.iloc[1])
    assert without.problems.tolist()[1:] == ["owner not in the owner map and no fallback user"] * 2


def test_times_in_the_forms_each_endpoint_wants() -> None:
    stamps = pd.Series(["2020-01-01T10:00:00Z", "2020-01-01T10:00:00.5+02:00", "garbage", None], dtype=object)
    v2 = common.utc_timestamp(stamps)
    assert v2.values.tolist()[:2] == ["2020-01-01T10:00:00Z", "2020-01-01T08:00:00Z"]
    assert v2.problems.tolist() == [None, None, "not a date-time", None]
    assert common.v1_timestamp(stamps).values.tolist()[:2] == ["2020-01-01 10:00:00", "2020-01-01 08:00:00"]
    dates = common.iso_date(pd.Series(["2020-02-30", "2020-02-03T23:00:00Z"], dtype=object))
    assert [None if pd.isna(v) else v for v in dates.values] == [None, "2020-02-03"]
    assert common.hhmm(pd.Series([15, 90, 1440])).values.tolist() == ["00:15", "01:30", None]


def test_text_is_trimmed_and_cut_with_the_cut_reported() -> None:
    carried = common.text(pd.Series(["  a  ", "x" * 300, "   ", None], dtype=object), 255)
    assert [None if pd.isna(v) else v for v in carried.values] == ["a", "x" * 255, None, None]
    assert carried.problems.tolist() == [None, "cut to 255 characters (Pipedrive's limit)", None, None]


def test_cut_html_never_leaves_half_an_entity() -> None:
    cut = common.cut_html(pd.Series(["ab&amp;cd", "ok"], dtype=object), 5)
    assert cut.values.tolist() == ["ab", "ok"] and cut.problems.iloc[1] is None


def test_links_follow_merges_to_staged_records_only() -> None:
    links = Links()
    links.add("opportunity", Outcomes("deals").stage(pd.DataFrame({"source_id": ["D1"]})))
    leads = Outcomes("leads")
    leads.merge(["L1", "L2"], "deals", ["D1", "D-missing"], "qualified_lead_into_deal")
    links.add("lead", leads.stage(pd.DataFrame({"source_id": ["L3"]})))
    found = links.resolve(pd.Series(["lead", "lead", "lead", "opportunity", "account"]), pd.Series(["L1", "L2", "l3", "D1", "D1"]))
    assert found.to_dict("records") == [
        {"object": "deals", "source_id": "D1"}, {"object": None, "source_id": None}, {"object": "leads", "source_id": "L3"},
        {"object": "deals", "source_id": "D1"}, {"object": None, "source_id": None}]
