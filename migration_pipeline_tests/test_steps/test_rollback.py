"""`migrate rollback` against the sandbox through real sockets: after a full migration it puts the Pipedrive
simulator back exactly as it was (pre-existing records field by field), survives being stopped midway (its budget
spent; SIGKILLed twice), asks before it deletes anything, and leaves the ID maps empty so that a later
`migrate run` starts clean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


from migration_pipeline.errors import BudgetExhausted
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps.rollback import RECORD_OBJECTS, plan_rollback
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import cli_for, settings_for

Store = dict[str, list[dict[str, Any]]]


def live_custom_fields(simulator: Any) -> dict[str, set[str]]:
    return {entity: {code for code, field in fields.items() if field.is_custom_field and not field.is_deleted}
            for entity, fields in simulator.fields.items()}


def differences(before: Store, after: Store) -> list[str]:
    """How `after` differs from `before`: records of `before` changed in any field or gone, records new in `after`
    and not soft-deleted (deal products, which Pipedrive deletes for good, must be absent)."""
    found = []
    for table, rows in before.items():
        held = {record["id"]: record for record in after.get(table, [])}
        for record in rows:
            now = held.get(record["id"])
            if now is None:
                found.append(f"{table} {record['id']}: gone")
            elif now != record:
                changed = sorted(key for key in {*record, *now} if record.get(key) != now.get(key))
                found.append(f"{table} {record['id']}: {', '.join(changed)} changed")
    for table, rows in after.items():
        old = {record["id"] for record in before.get(table, [])}
        new = [record for record in rows if record["id"] not in old and not record.get("is_deleted")]
        if new:
            found.append(f"{table}: {len(new)} new records left, e.g. {new[0]}")
    return found


def migrate_into(sandbox: Sandbox, tmp_path: Path) -> tuple[Any, Any, Callable[..., str], Warehouse, Store, dict[str, set[str]]]:
    """Plan, confirm and run a migration into `sandbox`: (settings, the Pipedrive simulator, `migrate`, the warehouse,
    and the simulator's records and live custom fields before the run)."""
    settings = settings_for(sandbox, tmp_path)
    simulator = sandbox.pipedrive_app.state.simulator
    migrate = cli_for(settings)
    migrate("plan")
    migrate("confirm", "--yes")
    before, fields_before = simulator.snapshot(), live_custom_fields(simulator)
    migrate("run")
    return settings, simulator, migrate, Warehouse(settings.migration_home), before, fields_before


def test_rollback_restores_the_state_before_the_migration_resumes_after_a_stop_and_asks_first(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(records=300, seed=5)
    settings, simulator, migrate, warehouse, before, fields_before = migrate_into(sandbox, tmp_path)
    loaded = {name: len(warehouse.idmap(name)) for name in RECORD_OBJECTS}
    linked = warehouse.query("SELECT object, count(*) AS n FROM idmap.existing GROUP BY object")
    assert linked["n"].sum() > 0  # the account held some of the organizations and persons: linked, never written to
    migrated = simulator.snapshot()
    assert differences(before, migrated)

    # Without --yes it shows the plan and asks; "n" changes nothing.
    out = migrate("rollback", input="n\n", exit_code=1)
    assert "delete" in out and "organizations" in out and "deal_products" in out and "Undo this in Pipedrive?" in out
    assert "tokens" in out
    assert simulator.snapshot() == migrated
    plan = plan_rollback(warehouse)
    planned = {name: count for name, operation, count in plan.counts() if operation == "delete"}
    linked_by_object = dict(zip(linked["object"], linked["n"], strict=True))
    for name, count in loaded.items():
        assert planned.get(name, 0) == count - linked_by_object.get(name, 0), name
    assert planned.get("fields") and planned.get("stages")

    # Stopped midway (the daily budget runs out after about 150 deletes), then run again: it completes.
    spent = simulator.usage()["tokens_used"]
    simulator.set_plan(daily_token_budget=spent + 20 + 450)
    migrate("rollback", "--yes", exit_code=BudgetExhausted.exit_code)
    print(f"planned tokens of the whole rollback: {plan.tokens()}; spent before the stop: {simulator.usage()['tokens_used'] - spent}")
    stopped = simulator.snapshot()
    assert differences(before, stopped)
    removed = sum(1 for record in stopped["files"] + stopped["notes"] if record.get("is_deleted"))
    assert removed > 0
    remaining = plan_rollback(warehouse)
    assert 0 < len(remaining.actions) < len(plan.actions)
    simulator.set_plan(daily_token_budget=1_500_000)
    simulator.reset_budget()
    # Someone deleted one of the migrated organizations by hand meanwhile: its delete answers 404, which counts as done.
    by_hand = next(action.pipedrive_id for action in remaining.actions if action.object == "organizations")
    simulator.change_record("organizations", int(by_hand), {"is_deleted": True})
    tokens_before = simulator.usage()["tokens_used"]
    out = migrate("rollback", "--yes")
    assert "1 already gone" in next(line for line in out.splitlines() if line.startswith("  organizations:"))
    print(out, f"tokens of the resumed rollback: {simulator.usage()['tokens_used'] - tokens_before}")

    # Pipedrive is as it was: every record that existed before, field by field; nothing new left live.
    assert differences(before, simulator.snapshot()) == []
    assert live_custom_fields(simulator) == fields_before
    assert all(not warehouse.idmap(name) for name in (*RECORD_OBJECTS, "stages", "lead_labels"))
    assert warehouse.query("SELECT count(*) AS n FROM idmap.existing")["n"][0] == 0
    assert not plan_rollback(warehouse).actions  # a third run has nothing left to do
    migrate("rollback", "--yes")

    # A later run starts clean: everything is created again (new records), the pre-existing ones linked again.
    migrate("run")
    assert {name: len(warehouse.idmap(name)) for name in RECORD_OBJECTS} == loaded
    old_ids = {str(record["id"]) for record in migrated["deals"]}
    assert not set(warehouse.idmap("deals").values()) & (old_ids - {str(record["id"]) for record in before["deals"]})


def test_the_plan_of_one_run_deletes_its_creates_restores_its_updates_and_leaves_the_rest(tmp_path: Path) -> None:
    """Run "full" created organizations 1 and 2 and linked the pre-existing 9; run "delta" created 3, updated 1 twice
    and deleted 2. Undoing "delta" deletes 3 and restores 1, the oldest before-image written last; undoing every run
    deletes 1 and 3, leaves 2 (gone already) and 9 (pre-existing) alone, and forgets the link to 9."""
    import pytest

    from migration_pipeline.errors import ConfigurationError
    from migration_pipeline.steps.existing import Link, record_links
    from migration_pipeline.warehouse.journal import Journal

    assert not plan_rollback(Warehouse(tmp_path / "empty")).actions  # nothing migrated, nothing to undo
    warehouse = Warehouse(tmp_path / "home")
    with Journal(warehouse.journal_dir, "full") as journal:
        for source_id, pipedrive_id in (("a", "1"), ("b", "2")):
            journal.outcome(journal.intent("create", "organizations", source_id, "d"), "ok", pipedrive_id=pipedrive_id)
    warehouse.record_ids("organizations", {"a": "1", "b": "2"}, "full")
    record_links(warehouse, "organizations", [Link("z", "9", "name")], "full")
    with Journal(warehouse.journal_dir, "delta") as journal:
        journal.outcome(journal.intent("create", "organizations", "c", "d"), "ok", pipedrive_id="3")
        journal.outcome(journal.intent("update", "organizations", "a", "d", before_image={"name": "first"}), "ok", pipedrive_id="1")
        journal.outcome(journal.intent("update", "organizations", "a", "d", before_image={"name": "second"}), "ok", pipedrive_id="1")
        journal.outcome(journal.intent("delete", "organizations", "b", "d", before_image={"name": "b"}), "ok", pipedrive_id="2")
    warehouse.record_ids("organizations", {"c": "3"}, "delta")
    warehouse.forget_ids("organizations", ["b"])

    delta = plan_rollback(warehouse, "delta")
    assert [(a.operation, a.pipedrive_id, a.body) for a in delta.actions] == [
        ("delete", "3", None), ("restore", "1", {"name": "second"}), ("restore", "1", {"name": "first"})]
    everything = plan_rollback(warehouse)
    # 2 is gone already (the delta deleted it), 9 existed before: only 1 and 3 are deleted, nothing restored.
    assert sorted((a.operation, a.pipedrive_id) for a in everything.actions) == [("delete", "1"), ("delete", "3")]
    assert everything.links_to_forget == 1
    with pytest.raises(ConfigurationError):
        plan_rollback(warehouse, "no-such-run")


def test_the_rollback_job_is_defined_and_writes_through_the_shared_pool() -> None:
    from migration_pipeline.definitions import defs

    job = defs.resolve_job_def("rollback")
    assert [node.definition.pool for node in job.graph.nodes] == ["pipedrive_api"]


def test_a_rollback_killed_midway_twice_completes_when_run_again(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    """`migrate rollback --yes` in a child process, SIGKILLed (no `finally`, no flush) twice while it deletes, then run
    again: Pipedrive ends as it was before the migration, with nothing deleted twice or left behind."""
    import json
    import time

    from migration_pipeline_tests.test_steps.test_load_crash import child_environment, kill, migrate as run_child, start_migrate

    sandbox = make_sandbox(records=150, seed=11)
    settings, simulator, migrate, warehouse, before, fields_before = migrate_into(sandbox, tmp_path)
    planned = len(plan_rollback(warehouse).actions)
    simulator.options.latency_ms = 60  # slow enough that a kill lands among the deletes, not after them

    env = child_environment({name: value for name, value in sandbox.environment().items()}, tmp_path)
    journal_dir = settings.migration_home / "journal"

    def deleted_so_far() -> int:
        """Deletes the rollback journals say Pipedrive answered, over every rollback so far."""
        outcomes = 0
        for path in journal_dir.glob("rollback-*.jsonl"):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line a kill cut short
                    continue
                outcomes += entry.get("phase") == "outcome" and entry.get("outcome") == "ok"
        return outcomes

    kills = []
    for target in (planned // 5, planned * 3 // 5):  # a fifth of the way, then three fifths
        process = start_migrate(["rollback", "--yes"], env, tmp_path, tmp_path / f"rollback-{target}.log")
        deadline = time.monotonic() + 180
        while deleted_so_far() < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, (tmp_path / f"rollback-{target}.log").read_text()[-3000:]  # killed, not finished
        kill(process)
        kills.append(deleted_so_far())
    left = len(plan_rollback(warehouse).actions)
    assert 0 < left < planned - kills[0], (planned, kills, left)  # both kills landed mid-rollback, work was kept

    simulator.options.latency_ms = 0
    code, out = run_child(["rollback", "--yes"], env, tmp_path, tmp_path / "rollback-last.log")
    assert code == 0, out[-3000:]
    assert differences(before, simulator.snapshot()) == []
    assert live_custom_fields(simulator) == fields_before
    assert not plan_rollback(warehouse).actions
    print(f"rollback of {planned} actions killed after {kills[0]} and {kills[1]} deletes; {left} left for the last run")
