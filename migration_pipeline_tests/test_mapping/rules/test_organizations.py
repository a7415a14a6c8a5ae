"""Accounts -> organizations: the workbook's fields, and parent links with cycles broken by rule."""

from __future__ import annotations

from pathlib import Path

from migration_pipeline.mapping.rules.organizations import PARENT_LINKED, PARENT_OWNER, find_cycles, stage_organizations
from migration_pipeline.mapping.spec import load_object_map
from migration_pipeline.mapping.transform import TransformContext
from migration_pipeline_tests.test_mapping.rules.frames import rejects_of, row, table

DEFAULT_MAP = load_object_map(Path(__file__).parents[3] / "migration_pipeline" / "mapping" / "defaults" / "organizations.yaml")


def account(account_id: str, parent: str | None = None, **fields: object) -> dict[str, object]:
    return {"accountid": account_id, "name": f"Account {account_id}", "_parentaccountid_value": parent, **fields}


def stage(*rows: dict[str, object]):  # type: ignore[no-untyped-def]
    return stage_organizations(table("accounts", *rows), DEFAULT_MAP, TransformContext(owner_map={"u1": 7}, fallback_owner_id=1))


def test_a_cycle_of_three_is_broken_at_its_smallest_id_whatever_the_row_order() -> None:
    rows = [account("b", "c"), account("c", "a"), account("a", "b"), account("d", "a")]
    for result in (stage(*rows), stage(*rows[::-1])):
        links = result.extra["relationships"].sort_values("source_id")
        assert list(zip(links[PARENT_OWNER], links[PARENT_LINKED], strict=True)) == [("c", "b"), ("a", "c"), ("a", "d")]
        assert rejects_of(result, "a") == [("parent", "parent_cycle")]
        reason = result.rejects.loc[result.rejects["source_id"] == "a", "reason"].iloc[0]
        assert "a -> b -> c -> a" in reason
        assert result.extra["cycles"].to_dict("records") == [{"members": "a -> b -> c", "length": 3, "dropped_link_of": "a"}]
        assert sorted(result.staged["source_id"]) == ["a", "b", "c", "d"]  # every account still migrates


def test_a_self_parent_is_a_cycle_of_one() -> None:
    result = stage(account("x", "x"))
    assert result.extra["relationships"].empty
    assert "its own parent" in result.rejects["reason"].iloc[0]


def test_find_cycles_is_linear_on_deep_chains_and_finds_every_loop() -> None:
    chain: dict[str, str | None] = {str(i): str(i + 1) for i in range(50_000)}
    chain.update({"x": "y", "y": "x", "s": "s", "root": None})
    assert find_cycles(chain) == [["s"], ["x", "y"]]


def test_a_parent_that_is_not_migrated_is_reported_and_no_link_is_made() -> None:
    result = stage(account("a", "gone"), {"accountid": "nameless"})
    assert result.extra["relationships"].empty
    assert rejects_of(result, "a") == [("parent", "parent_not_migrated")]
    assert rejects_of(result, "nameless") == [("*", "required:name")]
    assert list(result.staged["source_id"]) == ["a"]


def test_fields_come_from_the_workbook_and_bad_values_are_rejected_field_by_field() -> None:
    result = stage(account("ok", websiteurl="www.contoso.com", numberofemployees=120, _ownerid_value="U1", emailaddress1="a@b.co"),
                   account("bad", websiteurl="not a url", numberofemployees=-5, _ownerid_value="gone", emailaddress1="x@"))
    ok, bad = row(result, "ok"), row(result, "bad")
    assert (ok["website"], ok["employee_count"], ok["owner_id"], ok["custom:Email"]) == ("https://www.contoso.com", 120, 7, "a@b.co")
    assert (bad["website"], bad["employee_count"], bad["owner_id"], bad["custom:Email"]) == (None, None, 1, None)
    assert sorted(field for field, _ in rejects_of(result, "bad")) == ["custom:Email", "employee_count", "website"]
