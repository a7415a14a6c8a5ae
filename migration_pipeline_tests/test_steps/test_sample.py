"""The sample's selection (`steps/sample.py`) on small hand-made staged tables: one test per rule of the sample."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from migration_pipeline.steps.sample import SAMPLED, choose_sample, coverage, shown, summary

FALLBACK = 1  # the fallback user; 2 and 3 are owners matched by email
LINK_FIELDS = {"organizations": {"custom:Primary Contact": "persons"}}


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def staged() -> dict[str, pd.DataFrame]:
    """Every object, with one record alone showing each rule: a field, a stage, an owner bucket, a link."""
    return {
        "organizations": frame(
            *({"source_id": f"o{i}", "name": f"Org {i}", "owner_id": 2, "custom:Regions": None, "custom:Primary Contact": None}
              for i in range(1, 9)),
            {"source_id": "o-regions", "name": "Regions", "owner_id": 2, "custom:Regions": "EMEA", "custom:Primary Contact": None},
            {"source_id": "o-fallback", "name": "Fallback", "owner_id": FALLBACK, "custom:Regions": None, "custom:Primary Contact": None},
            {"source_id": "o-contact", "name": "Contact", "owner_id": 3, "custom:Regions": None, "custom:Primary Contact": "p-primary"},
        ),
        "organizations_relationships": frame(
            {"source_id": "o2", "type": "parent", "ref:rel_owner_org_id:organizations": "o7", "ref:rel_linked_org_id:organizations": "o2"},
        ),
        "persons": frame(
            *({"source_id": f"p{i}", "name": f"Person {i}", "owner_id": 2, "ref:org_id:organizations": f"o{i % 8 + 1}"} for i in range(1, 9)),
            {"source_id": "p-primary", "name": "Primary", "owner_id": 2, "ref:org_id:organizations": "o8"},
        ),
        "products": frame(*({"source_id": f"pr{i}", "name": f"Product {i}", "code": None} for i in range(1, 5)),
                          {"source_id": "pr-code", "name": "Coded", "code": "X-1"}),
        "deals": frame(
            *({"source_id": f"d{i}", "title": f"Deal {i}", "owner_id": 2, "status": "open", "ref:org_id:organizations": f"o{i}",
               "ref:person_id:persons": None, "ref:stage_id:stages": "Sales/Qualify"} for i in range(1, 7)),
            {"source_id": "d-won", "title": "Won", "owner_id": 2, "status": "won", "ref:org_id:organizations": "o3",
             "ref:person_id:persons": "p3", "ref:stage_id:stages": "Sales/Close"},
            {"source_id": "d-lost", "title": "Lost", "owner_id": FALLBACK, "status": "lost", "ref:org_id:organizations": "o4",
             "ref:person_id:persons": None, "ref:stage_id:stages": "Partners/Demo"},
        ),
        "deal_products": frame(
            {"source_id": "dp1", "ref:deal_id:deals": "d-lost", "ref:product_id:products": "pr4", "quantity": 2.0},
            {"source_id": "dp2", "ref:deal_id:deals": "d1", "ref:product_id:products": "pr1", "quantity": 1.0},
        ),
        "leads": frame(
            {"source_id": "l1", "title": "Lead", "owner_id": 3, "ref:person_id:persons": "p5", "ref:organization_id:organizations": "o5",
             "is_archived": None},
        ),
        "activities": frame(
            {"source_id": "a1", "type": "call", "owner_id": 2, "ref:deal_id:deals": "d-lost", "ref:org_id:organizations": None,
             "ref:lead_id:leads": None, "ref:participants:persons": ["p1", "p6"]},
            {"source_id": "a2", "type": "email", "owner_id": 2, "ref:deal_id:deals": None, "ref:org_id:organizations": "o2",
             "ref:lead_id:leads": "l1", "ref:participants:persons": None},
        ),
        "notes": frame({"source_id": "n1", "content": "Hello", "user_id": 2, "ref:deal_id:deals": "d-lost", "ref:lead_id:leads": None}),
        "files": frame({"source_id": "f1", "file_name": "a.pdf", "ref:deal_id:deals": "d3", "ref:lead_id:leads": None}),
    }


def sample_of(tables: dict[str, pd.DataFrame], size: int = 1, candidates: tuple[str, ...] = ("d-won", "d-lost")) -> pd.DataFrame:
    return choose_sample(tables, size, FALLBACK, LINK_FIELDS, candidates)


def chosen(sample: pd.DataFrame, name: str) -> set[str]:
    return set(sample.loc[sample["object"] == name, "source_id"])


def test_every_object_appears() -> None:
    sample = sample_of(staged())
    assert all(chosen(sample, name) for name in SAMPLED)


@pytest.mark.parametrize(
    ("rule", "name", "source_id"),
    [
        ("every custom field with values (only one organization has Regions)", "organizations", "o-regions"),
        ("every standard field with values (only one product has a code)", "products", "pr-code"),
        ("every stage (only one deal is in Sales/Close, one in Partners/Demo)", "deals", "d-won"),
        ("every stage", "deals", "d-lost"),
        ("every owner bucket (only one organization goes to the fallback user)", "organizations", "o-fallback"),
        ("every owner bucket (only one organization's owner is matched by email to user 3)", "organizations", "o-regions"),
        ("every value of an enumeration (one deal is won, one lost)", "deals", "d-won"),
        ("every link field with values (only one organization has a Primary Contact)", "organizations", "o-contact"),
    ],
)
def test_coverage_rule(rule: str, name: str, source_id: str) -> None:
    sample = sample_of(staged())
    assert source_id in chosen(sample, name), rule


def test_nothing_is_left_uncovered_and_the_reasons_say_what() -> None:
    tables = staged()
    sample = sample_of(tables)
    covered = coverage(tables, sample, FALLBACK)
    assert len(covered) > 40 and (covered["sampled"] > 0).all()
    assert shown(covered, "stage") == ["Partners/Demo", "Sales/Close", "Sales/Qualify"]
    assert shown(covered, "owner") == ["fallback", "matched by email"]
    assert {"deals: value status=lost", "organizations: field custom:Primary Contact", "leads: field ref:person_id:persons"} <= set(
        covered["object"] + ": " + covered["key"])
    assert "field custom:Regions" in sample.set_index(["object", "source_id"]).at[("organizations", "o-regions"), "reason"]


def linked_ids(row: dict[str, Any], name: str) -> list[tuple[str, str]]:
    out = []
    for column, value in row.items():
        linked = column.split(":", 2)[2] if column.startswith("ref:") else LINK_FIELDS.get(name, {}).get(column)
        if linked in SAMPLED and isinstance(value, (str, list)):  # not None, nor the NaN pandas puts for it
            out += [(linked, str(item)) for item in (value if isinstance(value, list) else [value])]
    return out


def test_every_record_a_sampled_record_links_to_is_sampled() -> None:
    tables = staged()
    sample = sample_of(tables)
    checked = 0
    for name, table in tables.items():
        for row in table[table["source_id"].isin(chosen(sample, name))].to_dict("records"):
            for linked, source_id in linked_ids(row, name):
                assert source_id in chosen(sample, linked), (name, row["source_id"], linked, source_id)
                checked += 1
    assert checked >= 10
    # A deal brings its organization and person; an activity its deal and participants; an organization its Primary Contact.
    assert {"o3", "o4"} <= chosen(sample, "organizations") and "p3" in chosen(sample, "persons")
    assert {"p1", "p6"} <= chosen(sample, "persons")
    assert "p-primary" in chosen(sample, "persons") and "o8" in chosen(sample, "organizations")  # and the contact's own org
    assert {"o7", "o2"} <= chosen(sample, "organizations")  # a relationship: both organizations


def test_the_same_tables_give_the_same_sample_whatever_their_row_order() -> None:
    tables = staged()
    shuffled = {name: table.sample(frac=1, random_state=3) for name, table in tables.items()}
    assert sample_of(tables).equals(sample_of(tables))
    assert sample_of(tables, size=3).equals(sample_of(shuffled, size=3))


def test_size_is_what_each_object_takes_for_itself() -> None:
    organizations = frame(*({"source_id": f"o{i}", "name": f"Org {i}", "owner_id": 2} for i in range(50)))
    notes = frame(*({"source_id": f"n{i}", "content": f"Note {i}", "user_id": 2, "ref:org_id:organizations": f"o{i % 50}"}
                    for i in range(400)))
    sample = choose_sample({"organizations": organizations, "notes": notes}, 10, FALLBACK)
    assert len(chosen(sample, "notes")) == 10
    assert len(chosen(sample, "organizations")) == 10  # the notes prefer the organizations already in
    sample = choose_sample({"organizations": organizations, "notes": notes}, 100, FALLBACK)
    assert len(chosen(sample, "notes")) == 100
    assert len(chosen(sample, "organizations")) == 50  # the whole table: fewer than the size
    assert summary(sample).set_index("object").loc["notes", "records"] == 100


def test_coverage_wins_over_size() -> None:
    deals = frame(*({"source_id": f"d{i}", "title": "Deal", "ref:stage_id:stages": f"Sales/Stage {i % 7}"} for i in range(70)))
    sample = choose_sample({"deals": deals}, 2, FALLBACK)
    assert len(chosen(sample, "deals")) == 7  # one per stage, though the size is 2


def test_a_closed_deal_brings_everything_that_hangs_on_it() -> None:
    """Closed deals are archived, in a sample too, and an archived deal can no longer be edited: a later full run must
    find nothing left to add to it."""
    deals = frame({"source_id": "open", "title": "Open"}, {"source_id": "closed", "title": "Closed"})
    activities = frame(*({"source_id": f"{deal}-{i}", "subject": "Call", "ref:deal_id:deals": deal}
                         for deal in ("open", "closed") for i in range(5)))
    tables = {"deals": deals, "activities": activities}
    sample = choose_sample(tables, 2, FALLBACK, archive_candidates=["closed"])
    assert chosen(sample, "deals") == {"open", "closed"}
    assert {f"closed-{i}" for i in range(5)} <= chosen(sample, "activities")
    assert set(sample.loc[sample["source_id"] == "closed-3", "reason"]) == {"on closed deal closed"}
    assert len(chosen(choose_sample(tables, 2, FALLBACK), "activities")) == 2  # open deals bring nothing


def test_empty_tables_are_skipped() -> None:
    tables = {**staged(), "files": pd.DataFrame(columns=["source_id", "file_name"])}
    sample = choose_sample(tables, 1, FALLBACK, LINK_FIELDS)
    assert not chosen(sample, "files") and all(chosen(sample, name) for name in SAMPLED if name != "files")
