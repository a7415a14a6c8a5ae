"""Extraction against the sandbox through real HTTP: every row exactly once, whatever the service does mid-paging."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.sandbox.dataverse.options import DataverseOptions
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.steps.extract import (
    ExtractFailure,
    ExtractResult,
    TableRef,
    extract_table,
    extract_tables,
    prefetched,
    read_cursor,
    scope_tables,
)
from migration_pipeline.steps.objects import STANDARD_TABLES
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

CONTACTS = TableRef("contact", "contacts", track_changes=True)
ACCOUNTS = TableRef("account", "accounts", track_changes=True)


def test_429_and_503_mid_paging_lose_and_repeat_nothing(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    # Small pages, a service-protection window that 14 pages overrun, and about one request in three failing with 503.
    options = DataverseOptions(max_page_size=50, request_limit=8, window_seconds=1.0, throttle_penalty_seconds=0.0)
    sandbox = make_sandbox(SandboxConfig(records=2000, seed=5, dataverse=options))
    simulator = sandbox.dataverse_app.state.simulator
    simulator.set_fault_rate(0.3, 503, "/api/data/v9.2/")
    warehouse = Warehouse(tmp_path / "home")

    with DataverseClient.from_settings(settings_for(sandbox, tmp_path), backoff=0.02) as client:
        outcomes = list(extract_tables(client, warehouse, [CONTACTS, ACCOUNTS]))
        throttled = client.stats.throttled

    assert all(isinstance(outcome, ExtractResult) for outcome in outcomes), outcomes
    stats = simulator.stats()
    assert throttled > 0 and stats.get("faulted", 0) > 0, stats  # both really happened
    for table, key in ((CONTACTS, "contactid"), (ACCOUNTS, "accountid")):
        extracted = warehouse.read_raw(table.entity_set)[key]
        expected = sandbox.data.dataverse.tables[table.entity_set][key]
        assert extracted.is_unique
        assert sorted(extracted) == sorted(expected)
    assert {o.entity_set: o.pages for o in outcomes if isinstance(o, ExtractResult)}["contacts"] >= 10


def test_a_tracked_table_keeps_its_delta_link_and_lookups_their_table(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(records=300, seed=2)
    warehouse = Warehouse(tmp_path / "home")
    with DataverseClient.from_settings(settings_for(sandbox, tmp_path)) as client:
        result = extract_table(client, warehouse, CONTACTS)
    cursor = read_cursor(warehouse, "contacts")
    assert cursor is not None and cursor["rows"] == result.rows and cursor["delta_link"] == result.delta_link
    assert result.delta_link and "deltatoken" in result.delta_link.lower()
    raw = warehouse.read_raw("contacts")
    with_parent = raw[raw["_parentcustomerid_value"].notna()]
    assert set(with_parent["_parentcustomerid_value__table"]) <= {"account", "contact"}  # polymorphic: (table, id)
    assert with_parent["_parentcustomerid_value__label"].notna().all()
    assert json.loads((warehouse.raw_path("contacts") / "_cursor.json").read_text())["extracted_at"]
    assert pq.read_table(warehouse.raw_path("contacts")).num_rows == len(sandbox.data.dataverse.tables["contacts"])


def test_note_bodies_are_never_in_list_queries(sandbox: Sandbox, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home")
    with DataverseClient.from_settings(settings_for(sandbox, tmp_path)) as client:
        extract_table(client, warehouse, TableRef("annotation", "annotations"))
    columns = set(warehouse.read_raw("annotations").columns)
    assert "documentbody" not in columns and {"filename", "filesize", "mimetype"} <= columns


def test_an_unreadable_inventory_table_is_skipped_and_a_failing_table_is_reported(sandbox: Sandbox, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home")
    tables = [TableRef("sdkmessageprocessingstep", "sdkmessageprocessingsteps"), TableRef("nosuchtable", "nosuchtables"),
              TableRef("team", "teams")]
    with DataverseClient.from_settings(settings_for(sandbox, tmp_path)) as client:
        outcomes = list(extract_tables(client, warehouse, tables))
    assert sorted(type(o).__name__ + ":" + o.entity_set for o in outcomes) == [
        "ExtractFailure:nosuchtables", "ExtractResult:teams", "ExtractSkipped:sdkmessageprocessingsteps"]
    assert not warehouse.raw_path("nosuchtables").exists()  # nothing half-written


def test_scope_is_the_standard_tables_until_the_schema_is_known(tmp_path: Path) -> None:
    assert [(t.logical_name, t.entity_set) for t in scope_tables(tmp_path)] == list(STANDARD_TABLES)


def test_prefetched_keeps_order_and_raises_where_the_producer_failed() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> object:
        yield 1
        raise ValueError("page 2 broke")

    seen = []
    with pytest.raises(ValueError, match="page 2 broke"):
        for item in prefetched(failing()):  # type: ignore[arg-type]
            seen.append(item)
    assert seen == [1]


def test_failures_are_typed() -> None:
    failure = ExtractFailure("x", RuntimeError("boom"))
    assert failure.entity_set == "x"
