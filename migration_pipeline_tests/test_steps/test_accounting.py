"""`audit.runs`: one row per (run, step) with what the step spent in Pipedrive tokens, and its Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from migration_pipeline.pipedrive.client import Usage
from migration_pipeline.pipedrive.costs import lookup
from migration_pipeline.pipedrive.ratelimit import RateLimitHeaders
from migration_pipeline.steps.accounting import RUNS_COLUMNS, RUNS_DDL, record_usage, usage_markdown
from migration_pipeline.warehouse.catalog import TABLES, Warehouse

CREATE = lookup("v2", "POST", "/organizations")
LIST = lookup("v2", "GET", "/organizations")


def spent(creates: int, pages: int = 1, limited: int = 0, remaining: int | None = 29_000) -> dict[str, Any]:
    """A real client's snapshot after `creates` organization creates, `pages` list pages and `limited` 429s."""
    assert CREATE is not None and LIST is not None
    usage = Usage()
    headers = RateLimitHeaders(daily_token_limit=30_000, daily_tokens_remaining=remaining)
    for _ in range(pages):
        usage.record(LIST, 200, headers)
    for _ in range(creates):
        usage.record(CREATE, 201, headers)
    for _ in range(limited):
        usage.record(CREATE, 429, RateLimitHeaders())
        usage.retries += 1
    return usage.snapshot()


def runs(warehouse: Warehouse) -> list[dict[str, Any]]:
    return warehouse.query("SELECT * FROM audit.runs ORDER BY run_id, step").to_dict("records")


def test_a_step_is_one_row_with_the_snapshot_and_its_counts(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    usage = spent(creates=3, limited=2)
    record_usage(warehouse, "run-1", "pipedrive/organizations", usage, 4.25, {"created": 3, "already_loaded": 7, "refused": 0})

    [row] = runs(warehouse)
    assert (row["run_id"], row["step"], row["seconds"]) == ("run-1", "pipedrive/organizations", 4.25)
    assert (row["requests"], row["tokens"], row["rate_limited"], row["retries"]) == (6, 3 * CREATE.cost + LIST.cost, 2, 2)
    assert json.loads(row["tokens_by_operation"]) == {CREATE.name: 3 * CREATE.cost, LIST.name: LIST.cost}
    assert json.loads(row["requests_by_operation"]) == {CREATE.name: 5, LIST.name: 1}
    assert json.loads(row["tokens_by_object"]) == {"organizations": 3 * CREATE.cost + LIST.cost}
    assert (row["daily_token_limit"], row["daily_tokens_remaining"]) == (30_000, 29_000)
    assert json.loads(row["counts"]) == {"created": 3, "already_loaded": 7, "refused": 0}
    assert (row["finished_at"] - row["started_at"]).total_seconds() == pytest.approx(4.25)


def test_recording_a_step_again_replaces_its_row_and_other_steps_stay(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    record_usage(warehouse, "run-1", "pipedrive/organizations", spent(creates=3), 1.0, {"created": 3})
    record_usage(warehouse, "run-1", "pipedrive/persons", spent(creates=1), 1.0, {"created": 1})
    record_usage(warehouse, "run-2", "pipedrive/organizations", spent(creates=0), 0.5)
    record_usage(warehouse, "run-1", "pipedrive/organizations", spent(creates=4), 2.0, {"created": 4})  # the step retried

    rows = runs(warehouse)
    assert [(r["run_id"], r["step"]) for r in rows] == [
        ("run-1", "pipedrive/organizations"), ("run-1", "pipedrive/persons"), ("run-2", "pipedrive/organizations")]
    assert json.loads(rows[0]["counts"]) == {"created": 4} and rows[0]["tokens"] == 4 * CREATE.cost + LIST.cost
    assert json.loads(rows[2]["counts"]) == {}


def test_a_client_that_never_heard_the_daily_figures_records_nulls(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    record_usage(warehouse, "run-1", "pipedrive/custom_fields", Usage().snapshot(), 0.0)
    [row] = warehouse.query("SELECT tokens, daily_token_limit IS NULL AS no_limit, daily_tokens_remaining IS NULL AS no_left "
                            "FROM audit.runs").to_dict("records")
    assert row == {"tokens": 0, "no_limit": True, "no_left": True}


def test_the_catalog_declares_the_same_shape() -> None:
    assert TABLES["audit.runs"] == RUNS_DDL
    assert [name for name, _ in RUNS_COLUMNS][:2] == ["run_id", "step"]


OLD_SHAPE = ("run_id VARCHAR, kind VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR, objects VARCHAR, "
             "created BIGINT, skipped BIGINT, failed BIGINT, requests BIGINT, tokens BIGINT, rate_limited BIGINT, "
             "retries BIGINT, usage JSON")


def old_catalog(home: Path, rows: int) -> Warehouse:
    """A home whose catalog was made before accounting: `audit.runs` of the first, never-written shape."""
    home.mkdir(parents=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA audit")
    con.execute(f"CREATE TABLE audit.runs ({OLD_SHAPE})")
    for number in range(rows):
        con.execute("INSERT INTO audit.runs (run_id, kind, tokens) VALUES (?, 'load', 7)", [f"old-{number}"])
    con.close()
    return Warehouse(home)


def test_an_empty_table_of_an_older_catalog_is_recreated(tmp_path: Path) -> None:
    warehouse = old_catalog(tmp_path / "home", rows=0)
    record_usage(warehouse, "run-1", "pipedrive/deals", spent(creates=2), 1.0, {"created": 2})
    columns = list(warehouse.query("SELECT * FROM audit.runs").columns)
    assert columns == [name for name, _ in RUNS_COLUMNS]


def test_rows_of_an_older_catalog_are_kept_and_the_missing_columns_added(tmp_path: Path) -> None:
    warehouse = old_catalog(tmp_path / "home", rows=1)
    record_usage(warehouse, "run-1", "pipedrive/deals", spent(creates=2), 1.0, {"created": 2})
    rows = warehouse.query("SELECT run_id, coalesce(step, '-') AS step, tokens FROM audit.runs ORDER BY run_id").to_dict("records")
    assert [(r["run_id"], r["step"], r["tokens"]) for r in rows] == [
        ("old-0", "-", 7), ("run-1", "pipedrive/deals", 2 * CREATE.cost + LIST.cost)]


def test_the_markdown_lists_tokens_per_operation_dearest_first_with_the_total() -> None:
    text = usage_markdown(spent(creates=3, limited=1))
    lines = text.splitlines()
    assert lines[0] == "| operation | requests | tokens |"
    assert lines[2] == f"| `{CREATE.name}` | 4 | {3 * CREATE.cost} |"
    assert lines[3] == f"| `{LIST.name}` | 1 | {LIST.cost} |"
    assert lines[4] == f"| **total** | 5 | {3 * CREATE.cost + LIST.cost} |"
    assert "1 rate-limited (429) answers" in text and "daily budget left: 29,000 of 30,000 tokens" in text


def test_the_markdown_of_a_step_that_called_nothing() -> None:
    assert usage_markdown(Usage().snapshot()) == "No Pipedrive calls."
