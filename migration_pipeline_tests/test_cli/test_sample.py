"""`migrate sample`, then `migrate verify` and `migrate run`, against the sandbox through real sockets.

The sample covers every object type, stage and owner bucket, only the sampled records reach the
Pipedrive simulator, its checks pass, and a following full run loads the rest: exactly one
Pipedrive record per staged record, the sampled ones not created again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from migration_pipeline.errors import PlanNotConfirmed, VerificationFailed
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps.existing import existing_ids
from migration_pipeline.steps.plan import load_plan
from migration_pipeline.steps.sample import SAMPLED
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import cli_for, settings_for

# Where each load step's records live in the simulator's store.
STORE_TABLES = {"organizations_relationships": "organization_relationships"}
OWNED = ("organizations", "persons", "deals", "leads", "activities")


def live(store: dict[str, list[dict[str, object]]], name: str) -> set[str]:
    return {str(record["id"]) for record in store[STORE_TABLES.get(name, name)] if not record.get("is_deleted")}


def test_a_sample_covers_everything_loads_only_itself_and_the_full_run_loads_the_rest(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(records=300, seed=5)
    settings = settings_for(sandbox, tmp_path)
    simulator = sandbox.pipedrive_app.state.simulator
    migrate = cli_for(settings)

    migrate("plan")
    assert "migrate confirm" in migrate("sample", exit_code=PlanNotConfirmed.exit_code)
    migrate("confirm", "--yes")
    before = simulator.snapshot()
    out = migrate("sample", "--size", "5")

    warehouse = Warehouse(settings.migration_home)
    sample = warehouse.query("SELECT object, source_id FROM plan.sample")
    chosen = {name: set(group["source_id"]) for name, group in sample.groupby("object")}
    staged = {name: warehouse.read_staged(name) for name in SAMPLED}
    # Every object type, every stage the staged deals are in, both owner buckets; yet a slice.
    assert all(chosen.get(name) for name in SAMPLED), set(SAMPLED) - set(chosen)
    deals = staged["deals"]
    closed = set(warehouse.read_staged("deals_archive_candidates")["source_id"])
    assert closed & chosen["deals"]  # closed deals are archived in a sample too
    assert set(deals.loc[deals["source_id"].isin(chosen["deals"]), "ref:stage_id:stages"]) == set(deals["ref:stage_id:stages"].dropna())
    fallback = load_plan(settings.migration_mappings_dir).owner_map.fallback_user_id
    owners = pd.concat([staged[name].loc[staged[name]["source_id"].isin(chosen[name]), "owner_id"] for name in OWNED])
    assert fallback in set(owners) and set(owners) - {fallback}
    assert sum(map(len, chosen.values())) < sum(map(len, staged.values())) / 2
    assert "owner buckets: fallback, matched by email" in out
    assert re.search(r"showing (\d+) of \1 coverage keys", out), out  # every field with values, stage, enumeration value

    # Only the sampled records reached Pipedrive, each once, and every check passed.
    after = simulator.snapshot()
    sampled = {name: warehouse.idmap(name) for name in SAMPLED}
    for name, idmap in sampled.items():
        assert set(idmap) == chosen[name], name
        linked = len(warehouse.query("SELECT * FROM idmap.existing WHERE object = ?", [name]))
        assert len(live(after, name) - live(before, name)) == len(idmap) - linked, name
    archived = {str(deal["id"]) for deal in after["deals"] if deal.get("is_archived")}
    assert archived == {sampled["deals"][deal] for deal in closed & chosen["deals"]}
    assert "check pipedrive/deals:field_diff: passed" in out and "FAILED" not in out, out
    migrate("verify")

    # The full run loads the rest: exactly one Pipedrive record per staged record.
    out = migrate("run")
    assert "FAILED" not in out, out
    store = simulator.snapshot()
    for name in SAMPLED:
        staged_ids = set(warehouse.read_staged(name)["source_id"])
        idmap = warehouse.idmap(name)
        assert set(idmap) == staged_ids, name
        assert len(set(idmap.values())) == len(idmap), name
        assert {source_id: idmap[source_id] for source_id in chosen[name]} == sampled[name], name  # not created again
        linked = len(warehouse.query("SELECT * FROM idmap.existing WHERE object = ?", [name]))
        assert len(live(store, name) - live(before, name)) == len(idmap) - linked, name
    archived = {str(deal["id"]) for deal in store["deals"] if deal.get("is_archived")}
    assert archived == {warehouse.idmap("deals")[deal] for deal in closed}

    # A value changed in Pipedrive after the load: `migrate verify` names it, writes the report, and exits non-zero.
    out = migrate("verify")
    assert re.search(r"files\s+\d+ records, 0 values differing, 0 missing; counts add up \(\d+ tokens\)", out), out
    assert "report: " in out and "tokens in all" in out
    linked = existing_ids(warehouse, "persons")  # records that existed before: checked for presence only
    person_source, person_id = next(pair for pair in sorted(warehouse.idmap("persons").items()) if pair[0] not in linked)
    simulator.change_record("persons", int(person_id), {"name": "Renamed In Pipedrive"})
    out = migrate("verify", exit_code=VerificationFailed.exit_code)
    assert "Verification failed: persons" in out, out
    assert f"name: 1 ({person_source}: expected " in out and "found Renamed In Pipedrive" in out, out
    report = Path(re.search(r"report: (\S+\.md)", out).group(1))  # type: ignore[union-attr]
    assert person_source in report.read_text()
    assert "Renamed In Pipedrive" in report.with_suffix(".html").read_text()
    differences = warehouse.query("SELECT source_id, pipedrive_id, field, actual FROM validation.field_diff")
    assert differences.values.tolist() == [[person_source, person_id, "name", "Renamed In Pipedrive"]]
