"""Accounting: what each step cost in Pipedrive's currency, one `audit.runs` row per (run, step).

The client counts requests, tokens (per operation and per object), 429s and retries, and
keeps the company's daily budget figures from the last response that carried them
(`PipedriveClient.usage.snapshot()`). `record_usage` stores that snapshot with the step's own
counts (created, already loaded, refused, in doubt...), so `migrate status` can say what was
spent today and how much of the daily budget is left without calling Pipedrive, and analysts
can query the cost of every run:

    SELECT step, sum(tokens) FROM audit.runs GROUP BY step ORDER BY 2 DESC

Re-recording the same (run, step), a retried step, replaces its row rather than counting it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from migration_pipeline.warehouse.catalog import Warehouse

RUNS_TABLE = "audit.runs"

# (column, DuckDB type): the shape of `audit.runs`, as the catalog declares it (`TABLES`; a test keeps them equal).
RUNS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("step", "VARCHAR"),  # the asset or step, e.g. "pipedrive/organizations"
    ("started_at", "TIMESTAMPTZ"),
    ("finished_at", "TIMESTAMPTZ"),  # when the row was recorded
    ("seconds", "DOUBLE"),
    ("requests", "BIGINT"),
    ("tokens", "BIGINT"),
    ("rate_limited", "BIGINT"),  # answers with status 429
    ("retries", "BIGINT"),
    ("requests_by_operation", "JSON"),
    ("tokens_by_operation", "JSON"),
    ("tokens_by_object", "JSON"),
    ("daily_token_limit", "BIGINT"),  # the company's daily budget, as Pipedrive last reported it
    ("daily_tokens_remaining", "BIGINT"),  # what was left of it when the step finished
    ("daily_requests_left", "BIGINT"),
    ("counts", "JSON"),  # the step's own counts: created, already_loaded, refused, in_doubt...
)
RUNS_DDL = ", ".join(f'"{name}" {kind}' for name, kind in RUNS_COLUMNS)


def record_usage(
    warehouse: Warehouse,
    run_id: str,
    step: str,
    usage: Mapping[str, Any],
    seconds: float,
    counts: Mapping[str, int] | None = None,
) -> None:
    """Store what `step` of `run_id` spent: `usage` is `PipedriveClient.usage.snapshot()`.

    One row per (run_id, step): recording the same step again replaces its row.
    """
    finished = datetime.now(UTC)
    row = {
        "run_id": run_id,
        "step": step,
        "started_at": finished - timedelta(seconds=max(float(seconds), 0.0)),
        "finished_at": finished,
        "seconds": float(seconds),
        "requests": int(usage.get("requests") or 0),
        "tokens": int(usage.get("tokens") or 0),
        "rate_limited": int(usage.get("rate_limited") or 0),
        "retries": int(usage.get("retries") or 0),
        "requests_by_operation": _json(usage.get("requests_by_operation")),
        "tokens_by_operation": _json(usage.get("tokens_by_operation")),
        "tokens_by_object": _json(usage.get("tokens_by_object")),
        "daily_token_limit": usage.get("daily_token_limit"),
        "daily_tokens_remaining": usage.get("daily_tokens_remaining"),
        "daily_requests_left": usage.get("daily_requests_left"),
        "counts": _json({key: int(value) for key, value in (counts or {}).items()}),
    }
    frame = pd.DataFrame([row], columns=[name for name, _ in RUNS_COLUMNS])
    for name in ("daily_token_limit", "daily_tokens_remaining", "daily_requests_left"):
        frame[name] = frame[name].astype("Int64")  # the server may not have said: null, not NaN
    with warehouse.connect() as con:
        ensure_runs_table(con)
    warehouse.replace_rows(RUNS_TABLE, frame, where="run_id = ? AND step = ?", params=[run_id, step])


def ensure_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    """`audit.runs` in the current shape, whatever an older version of the catalog created.

    Catalogs made before accounting existed hold an `audit.runs` of another shape that nothing
    ever wrote: empty, it is recreated; otherwise the missing columns are added (rows stay).
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    con.execute(f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} ({RUNS_DDL})")
    present = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'audit' AND table_name = 'runs'"
    ).fetchall()}
    missing = [(name, kind) for name, kind in RUNS_COLUMNS if name not in present]
    if not missing:
        return
    if con.execute(f"SELECT count(*) FROM {RUNS_TABLE}").fetchone()[0] == 0:  # type: ignore[index]
        con.execute(f"DROP TABLE {RUNS_TABLE}")
        con.execute(f"CREATE TABLE {RUNS_TABLE} ({RUNS_DDL})")
        return
    for name, kind in missing:
        con.execute(f'ALTER TABLE {RUNS_TABLE} ADD COLUMN "{name}" {kind}')


def usage_markdown(usage: Mapping[str, Any]) -> str:
    """Tokens (and requests) per operation as a small Markdown table, dearest first, for Dagster metadata."""
    tokens: Mapping[str, int] = usage.get("tokens_by_operation") or {}
    requests: Mapping[str, int] = usage.get("requests_by_operation") or {}
    operations = sorted(set(tokens) | set(requests), key=lambda name: (-tokens.get(name, 0), name))
    if not operations:
        return "No Pipedrive calls."
    lines = ["| operation | requests | tokens |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {requests.get(name, 0):,} | {tokens.get(name, 0):,} |" for name in operations]
    lines.append(f"| **total** | {int(usage.get('requests') or 0):,} | {int(usage.get('tokens') or 0):,} |")
    notes = []
    if usage.get("rate_limited"):
        notes.append(f"{usage['rate_limited']:,} rate-limited (429) answers")
    if usage.get("retries"):
        notes.append(f"{usage['retries']:,} retries")
    if usage.get("daily_tokens_remaining") is not None and usage.get("daily_token_limit"):
        notes.append(f"daily budget left: {usage['daily_tokens_remaining']:,} of {usage['daily_token_limit']:,} tokens")
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) + "." if notes else "")


def _json(value: Any) -> str:
    return json.dumps(dict(value or {}), sort_keys=True)
