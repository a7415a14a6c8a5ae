"""`migrate status`: what is extracted, planned, staged, loaded and verified, the tokens, and the next command.

It reads MIGRATION_HOME and the mappings dir only: an empty home, a hand-made partial one, and
the home a real small migration against the sandbox leaves behind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from click.testing import CliRunner

from migration_pipeline.cli import main
from migration_pipeline.mapping.confirmation import confirm
from migration_pipeline.pipedrive.client import PipedriveClient, Usage
from migration_pipeline.pipedrive.costs import lookup
from migration_pipeline.pipedrive.ratelimit import RateLimitHeaders
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.settings import Settings
from migration_pipeline.steps.accounting import record_usage
from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.steps.status import PLAN_FILES, Status, migration_status
from migration_pipeline.validation.diff import RECORD, SUMMARY_COLUMNS
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import write_frame
from migration_pipeline_tests.conftest import settings_for


def status_of(home: Path, mappings: Path) -> Status:
    return migration_status(Warehouse(home), mappings)


def by_name(status: Status) -> dict[str, Any]:
    return {item.name: item for item in status.objects}


def migrate_status(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["status", *args], obj={"settings": settings})
    return result.exit_code, result.output


def create_cost(resource: str) -> int:
    operation = lookup("v2", "POST", f"/{resource}")
    assert operation is not None
    return operation.cost


# -- an empty home -------------------------------------------------------------------------------


def test_an_empty_home_says_nothing_is_extracted_and_advises_audit(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, migration_home=tmp_path / "home", migration_mappings_dir=tmp_path / "mappings")  # type: ignore[call-arg]

    code, output = migrate_status(settings)
    assert code == 0, output
    assert "nothing extracted yet" in output and "no plan in" in output
    assert "Next: `migrate audit`" in output
    assert "Pipedrive tokens spent today (UTC): none recorded" in output
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()  # status reads, it never creates the warehouse

    code, output = migrate_status(settings, "--json")
    report = json.loads(output)
    assert code == 0 and report["next_command"] == "migrate audit" and report["raw_tables"] == 0
    assert all(item["extracted"] is None and item["staged"] is None for item in report["objects"])


# -- a hand-made partial home, step by step -------------------------------------------------------


def staged_ids(warehouse: Warehouse, name: str, ids: list[str]) -> None:
    write_frame(warehouse.staged_path(name), pd.DataFrame({"source_id": pd.Series(ids, dtype="string")}))


def test_each_state_of_a_partial_home_gets_its_next_command(tmp_path: Path) -> None:
    home, mappings = tmp_path / "home", tmp_path / "mappings"
    warehouse = Warehouse(home)
    write_frame(warehouse.raw_path("accounts"), pd.DataFrame({"accountid": ["a", "b", "c"]}))
    write_frame(warehouse.raw_path("phonecalls"), pd.DataFrame({"activityid": ["p"]}))
    write_frame(warehouse.raw_path("tasks"), pd.DataFrame({"activityid": ["t", "u"]}))
    status = status_of(home, mappings)
    assert status.raw_tables == 3 and status.plan == "missing" and status.next_command == "migrate plan"
    assert by_name(status)["organizations"].extracted == 3
    assert by_name(status)["activities"].extracted == 3  # the typed activity tables, as the audit counts them
    assert by_name(status)["persons"].extracted is None

    mappings.mkdir()
    for name in PLAN_FILES[:-1]:
        (mappings / name).write_text("entries: []\n")
    status = status_of(home, mappings)
    assert (status.plan, status.next_command) == ("incomplete", "migrate plan") and PLAN_FILES[-1] in status.plan_detail

    (mappings / PLAN_FILES[-1]).write_text("entries: []\n")
    assert (status_of(home, mappings).plan, status_of(home, mappings).next_command) == ("unconfirmed", "migrate confirm")

    confirm(mappings, decisions=[], confirmed_by="tester")
    status = status_of(home, mappings)
    assert (status.plan, status.confirmed_by, status.next_command) == ("confirmed", "tester", "migrate sample")
    assert "nothing is in Pipedrive yet" in status.advice and "`migrate run`" in status.advice

    (mappings / "stages.yaml").write_text("entries: [edited]\n")
    status = status_of(home, mappings)
    assert (status.plan, status.next_command) == ("changed", "migrate confirm") and "stages.yaml" in status.plan_detail
    confirm(mappings, decisions=[], confirmed_by="tester")

    # Staged, partly loaded: what is left, and what it costs at each object's create price.
    staged_ids(warehouse, "organizations", ["a", "b", "c", "placeholder"])
    staged_ids(warehouse, "persons", ["x", "y"])
    staged_ids(warehouse, "products", [])
    staged_ids(warehouse, "deals", ["d"])
    for name in ("deal_products", "leads", "activities", "notes", "files"):
        staged_ids(warehouse, name, [])
    write_frame(warehouse.staged_path("organizations_relationships"), pd.DataFrame({"source_id": ["a"]}))
    warehouse.replace_rows("staged.rejects", pd.DataFrame([
        dict(object="organizations", source_id="a", field="websiteurl", value="x", reason="not a URL", rule="url"),
        dict(object="organizations", source_id="a", field="industrycode", value="y", reason="no option", rule="option"),
        dict(object="persons", source_id="z", field="*", value=None, reason="no name", rule="name"),
        dict(object="deals", source_id="e", field=None, value=None, reason="Pipedrive refused the record", rule="load"),
    ]))
    warehouse.record_ids("organizations", {"a": "1", "b": "2", "gone-from-staging": "9"}, "run-1")
    status = status_of(home, mappings)
    objects = by_name(status)
    assert (objects["organizations"].staged, objects["organizations"].loaded, objects["organizations"].left_to_load) == (4, 3, 2)
    assert (objects["persons"].left_to_load, objects["products"].left_to_load, objects["deals"].left_to_load) == (2, 0, 1)
    assert (objects["organizations"].rejected_records, objects["organizations"].rejected_values) == (0, 2)
    assert (objects["persons"].rejected_records, objects["deals"].rejected_records) == (1, 1)
    assert objects["notes"].loadable and objects["notes"].left_to_load == 0  # none staged: none to load
    need = 2 * create_cost("organizations") + 2 * create_cost("persons") + create_cost("deals")
    assert (status.budget.creates_to_load, status.budget.tokens_to_load) == (5, need)
    assert status.budget.creates_waiting == 0  # every staged object is the loader's
    assert status.next_command == "migrate run" and "5 records of organizations, persons and deals" in status.advice

    # The daily budget Pipedrive reported today is spent: run again after it resets.
    record_usage(warehouse, "run-1", "pipedrive/organizations", spent(tokens=10, remaining=0), 3.0, {"created": 2})
    status = status_of(home, mappings)
    assert status.budget.estimated_left == 0 and status.budget.tokens_today == 10
    assert status.next_command == "migrate run" and "after it resets" in status.advice

    # Everything loaded: verify; verified with differences: verify again after a look; clean: nothing to run.
    warehouse.record_ids("organizations", {"c": "3", "placeholder": "4"}, "run-2")
    warehouse.record_ids("persons", {"x": "5", "y": "6"}, "run-2")
    warehouse.record_ids("deals", {"d": "7"}, "run-2")
    status = status_of(home, mappings)
    assert status.budget.creates_to_load == 0 and status.next_command == "migrate verify"
    assert "organizations, persons and deals" in status.advice

    def verified(differing: int) -> None:
        rows = [dict(object=name, field=RECORD, compared=count, equal=count, differing=0, missing=0)
                for name, count in (("organizations", 4), ("persons", 2), ("products", 0), ("deals", 1))]
        rows.append(dict(object="persons", field="name", compared=2, equal=2 - differing, differing=differing, missing=0))
        summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS).assign(checked_at=datetime.now(UTC))
        warehouse.replace_rows("validation.summary", summary)

    verified(differing=1)
    status = status_of(home, mappings)
    assert by_name(status)["persons"].differing == 1 and by_name(status)["organizations"].verified == 4
    assert status.next_command == "migrate verify" and "validation.field_diff" in status.advice

    verified(differing=0)
    status = status_of(home, mappings)
    assert status.next_command is None and "verified" in status.advice


def spent(tokens: int, remaining: int | None, limit: int = 30_000) -> dict[str, Any]:
    """A snapshot of a client that spent `tokens` on list reads and last heard `remaining` of `limit`."""
    operation = lookup("v2", "GET", "/organizations")
    assert operation is not None and tokens % operation.cost == 0
    usage = Usage()
    for _ in range(tokens // operation.cost):
        usage.record(operation, 200, RateLimitHeaders(daily_token_limit=limit, daily_tokens_remaining=remaining))
    return usage.snapshot()


def test_tokens_today_count_only_todays_steps_and_an_old_figure_is_not_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    warehouse = Warehouse(home)
    record_usage(warehouse, "yesterday", "pipedrive/organizations", spent(tokens=100, remaining=1_000), 1.0)
    warehouse.query("UPDATE audit.runs SET finished_at = finished_at - INTERVAL 1 DAY, started_at = started_at - INTERVAL 1 DAY")
    budget = status_of(home, tmp_path / "mappings").budget
    assert (budget.steps_today, budget.tokens_today, budget.daily_tokens_remaining) == (0, 0, 1_000)
    assert not budget.reported_today and budget.estimated_left == 30_000  # the budget has reset since

    record_usage(warehouse, "today", "pipedrive/organizations", spent(tokens=20, remaining=None), 1.0)
    budget = status_of(home, tmp_path / "mappings").budget
    assert (budget.steps_today, budget.tokens_today, budget.estimated_left) == (1, 20, 29_980)

    record_usage(warehouse, "today", "pipedrive/persons", spent(tokens=30, remaining=25_000), 1.0)
    budget = status_of(home, tmp_path / "mappings").budget
    assert (budget.steps_today, budget.tokens_today, budget.estimated_left) == (2, 50, 25_000)
    assert budget.reported_at is not None and datetime.now(UTC) - budget.reported_at < timedelta(minutes=1)


# -- after a real small migration ----------------------------------------------------------------


def test_status_follows_a_real_migration_from_plan_to_verified(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(records=200, seed=5))
    settings = settings_for(sandbox, tmp_path)
    runner = CliRunner()

    def migrate(*args: str) -> str:
        result = runner.invoke(main, list(args), obj={"settings": settings})
        assert result.exit_code == 0, result.output
        return result.output

    def report() -> dict[str, Any]:
        return json.loads(migrate("status", "--json"))

    migrate("plan")
    planned = report()
    assert planned["plan"] == "unconfirmed" and planned["next_command"] == "migrate confirm"
    warehouse = Warehouse(settings.migration_home)
    organizations = {item["name"]: item for item in planned["objects"]}["organizations"]
    assert organizations["extracted"] == len(warehouse.read_raw("accounts", columns=["accountid"])) > 0
    assert organizations["staged"] is None

    migrate("confirm", "--yes")
    assert report()["next_command"] == "migrate sample"  # nothing loaded yet: a sample first

    migrate("run")
    done = report()
    objects = {item["name"]: item for item in done["objects"]}
    for item in OBJECTS:
        row = objects[item.name]
        assert row["staged"] == len(warehouse.read_staged(item.name)) > 0
        assert row["loaded"] == len(warehouse.idmap(item.name)) == row["staged"], item.name
        assert row["left_to_load"] == 0 and row["verified"] == row["staged"] and row["differing"] == row["missing"] == 0
    waiting = [row for row in objects.values() if not row["loadable"]]  # staged; the loader does not take them yet
    assert objects["leads"]["staged"] > 0
    assert done["budget"]["creates_waiting"] == sum(row["staged"] or 0 for row in waiting)
    assert done["budget"]["creates_to_load"] == 0 and done["next_command"] is None

    async def read_users() -> dict[str, Any]:  # one real call, so the snapshot is exactly what the client reports
        async with PipedriveClient.from_settings(settings) as client:
            await client.users()
            return client.usage.snapshot()

    usage = asyncio.run(read_users())
    record_usage(warehouse, "manual", "pipedrive/users", usage, 0.1, {"read": 1})
    output = migrate("status")
    runs = warehouse.query("SELECT sum(tokens) AS tokens, sum(requests) AS requests, count(*) AS steps FROM audit.runs").iloc[0]
    assert runs["steps"] > 1  # the load steps record theirs too
    assert (f"Pipedrive tokens spent today (UTC): {int(runs['tokens']):,} in {int(runs['requests']):,} requests over "
            f"{int(runs['steps'])} recorded steps") in output
    assert "Remaining load: 0 creates" in output and "Next: nothing to run." in output
    assert "organizations" in output and "files" in output
    if usage["daily_token_limit"] is not None:
        assert f"of {usage['daily_token_limit']:,} (Pipedrive's figure" in output


def test_every_staged_object_is_loadable_and_counted_in_the_token_estimate(tmp_path: Path) -> None:
    """Notes, like every staged object, are left to load until their ID map holds them, and verified once loaded."""
    home, mappings = tmp_path / "home", tmp_path / "mappings"
    warehouse = Warehouse(home)
    staged_ids(warehouse, "notes", ["n1", "n2", "n3"])
    before = by_name(status_of(home, mappings))["notes"]
    assert before.loadable and before.verifiable and before.left_to_load == 3

    warehouse.record_ids("notes", {"n1": "11"}, "run-1")
    status = status_of(home, mappings)
    notes = by_name(status)["notes"]
    assert (notes.loaded, notes.left_to_load) == (1, 2)
    assert status.budget.tokens_to_load >= 2 * notes.create_cost > 0
    assert notes.verification_stale  # loaded, never verified: `migrate verify` is advised once the load is done
