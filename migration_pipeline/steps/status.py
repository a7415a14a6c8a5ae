"""Status: how far the migration has come, what it has spent, and what to run next, from MIGRATION_HOME alone.

`migration_status` reads what the steps left behind and nothing else, so it never needs
Dynamics or Pipedrive and works on any home, from an empty one to a finished migration:

- extracted rows: the raw Parquet tables (the extract's cursor file, else Parquet metadata);
- the plan: the workbook files in the mappings dir and `confirmation.yaml` (digest checked);
- staged rows: the staged Parquet tables; rejected records and values: `staged.rejects`;
- loaded: `idmap.<object>`; left to load: staged source ids not in the ID map;
- verified: `validation.summary` (records compared, values differing, records missing);
- Pipedrive tokens: `audit.runs` (what each step spent, and the daily budget Pipedrive last
  reported), and the tokens the rest of the load needs at each object's create price.

The warehouse is opened read-only and never created; while a running step holds DuckDB's one
write lock, what only DuckDB knows is reported as unknown instead of waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow.dataset as ds
import yaml
from pydantic import BaseModel

from migration_pipeline.mapping.confirmation import CONFIRMATION_FILE, Confirmation, plan_digest, plan_files
from migration_pipeline.mapping.custom_entities import CUSTOM_ENTITIES_FILE
from migration_pipeline.mapping.rules.run import OBJECTS as STAGED_OBJECTS
from migration_pipeline.mapping.stages import STAGES_FILE
from migration_pipeline.steps.audit import ACTIVITY_TABLES, create_call
from migration_pipeline.steps.extract import CURSOR_FILE
from migration_pipeline.steps.objects import STANDARD_TABLES, WORKBOOK_OBJECTS
from migration_pipeline.steps.plan import OWNERS_FILE
from migration_pipeline.validation.diff import RECORD
from migration_pipeline.warehouse.catalog import Warehouse

PlanState = Literal["missing", "incomplete", "unconfirmed", "changed", "confirmed"]

# The workbook `migrate plan` writes: a map per object, then the owner, stage and custom-entity maps.
PLAN_FILES: tuple[str, ...] = (*(item.map_file for item in WORKBOOK_OBJECTS), OWNERS_FILE, STAGES_FILE, CUSTOM_ENTITIES_FILE)
# The objects the loader and `migrate verify` take: every staged one. An object whose ID map exists counts as
# loaded too, and one with a `validation.summary` as verified, should a staged object ever be left out here.
LOADED_BY_LOADER = frozenset(STAGED_OBJECTS)
# `validation.summary` rows that count records, not values: those diffed, and those linked to records that
# existed in Pipedrive before the migration (checked for presence only).
RECORD_ROWS: tuple[str, ...] = (RECORD, "(linked existing)")
_LOGICAL_TO_SET = dict(STANDARD_TABLES)


def source_sets(name: str) -> tuple[str, ...]:
    """The raw tables an object's records come from (what `extracted` counts)."""
    if name == "activities":  # the rules read the four typed sets, as the audit counts them
        return tuple(_LOGICAL_TO_SET[logical] for logical in ACTIVITY_TABLES)
    if name == "files":  # attachments of annotations, like notes
        return ("annotations",)
    return tuple(item.entity_set for item in WORKBOOK_OBJECTS if item.name == name)


def create_cost(name: str) -> int:
    """Tokens one create of `name` costs: its create call's price in the specs (`pipedrive/costs.py`)."""
    return create_call(name.replace("_", " ")).cost


class ObjectStatus(BaseModel):
    name: str
    sources: list[str]
    extracted: int | None = None  # None: not extracted yet
    staged: int | None = None  # None: not staged yet
    staged_at: datetime | None = None
    rejected_records: int | None = None  # whole records in staged.rejects (transform, or refused by Pipedrive)
    rejected_values: int | None = None  # single values in staged.rejects (the record still migrates)
    loadable: bool  # the loader moves this object (it has an ID map, or is one of OBJECTS); the others wait for it
    verifiable: bool  # `migrate verify` diffs it (one of OBJECTS, or it has a `validation.summary`)
    loaded: int | None = None  # rows of idmap.<object>; None: unknown (the warehouse is busy)
    left_to_load: int | None = None  # staged records not in the ID map
    last_loaded_at: datetime | None = None
    create_cost: int  # tokens per create
    verified: int | None = None  # records the last verify compared; None: never verified
    missing: int | None = None  # of those, records not found in Pipedrive
    differing: int | None = None  # values that differ
    verified_at: datetime | None = None

    @property
    def tokens_to_load(self) -> int:
        return (self.left_to_load or 0) * self.create_cost

    @property
    def verification_stale(self) -> bool:
        """Loaded since the last verify (or never verified)."""
        if not self.loaded:
            return False
        if self.verified_at is None:
            return True
        return self.last_loaded_at is not None and self.last_loaded_at > self.verified_at


class Budget(BaseModel):
    """Pipedrive tokens: spent today (UTC) by the recorded steps, the daily budget, what the rest of the load needs."""

    steps_today: int = 0
    tokens_today: int = 0
    requests_today: int = 0
    rate_limited_today: int = 0
    daily_token_limit: int | None = None  # as Pipedrive last reported it
    daily_tokens_remaining: int | None = None
    reported_at: datetime | None = None  # when it did
    creates_to_load: int = 0  # objects the loader takes
    tokens_to_load: int = 0
    creates_waiting: int = 0  # staged objects the loader does not take yet
    tokens_waiting: int = 0

    @property
    def reported_today(self) -> bool:
        return self.reported_at is not None and self.reported_at >= _today()

    @property
    def estimated_left(self) -> int | None:
        """Tokens left today: Pipedrive's own figure if it gave one today, else the limit less what we spent since."""
        if self.reported_today:
            return self.daily_tokens_remaining
        if self.daily_token_limit is not None:
            return max(self.daily_token_limit - self.tokens_today, 0)
        return None

    @property
    def days_to_load(self) -> float | None:
        """Full daily budgets the rest of the load takes (other integrations share the budget too)."""
        return self.tokens_to_load / self.daily_token_limit if self.daily_token_limit else None


class Status(BaseModel):
    home: Path
    mappings_dir: Path
    raw_tables: int = 0  # extracted tables (schema discovery's own tables aside)
    extracted_at: str | None = None  # the latest extract
    plan: PlanState = "missing"
    plan_detail: str = ""
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    objects: list[ObjectStatus] = []
    budget: Budget = Budget()
    warehouse_note: str | None = None  # why the figures only DuckDB holds are unknown (None: they are known)
    next_command: str | None = None  # None: nothing left to do (or nothing to do until a running step ends)
    advice: str = ""


def migration_status(warehouse: Warehouse, mappings_dir: Path) -> Status:
    """Everything `migrate status` shows, from the files and tables under `warehouse.home` and the mappings dir."""
    status = Status(home=warehouse.home, mappings_dir=mappings_dir)
    counts, status.extracted_at = _raw_counts(warehouse)
    status.raw_tables = len(counts)
    _read_plan(status, mappings_dir)
    for name in STAGED_OBJECTS:
        sources = list(source_sets(name))
        extracted = [counts[s] for s in sources if s in counts]
        staged_path = warehouse.staged_path(name)
        staged = _count_rows(staged_path)
        status.objects.append(ObjectStatus(
            name=name,
            sources=sources,
            extracted=sum(extracted) if extracted else None,
            staged=staged,
            staged_at=datetime.fromtimestamp(staged_path.stat().st_mtime, UTC) if staged is not None else None,
            loadable=name in LOADED_BY_LOADER,
            verifiable=name in LOADED_BY_LOADER,
            create_cost=create_cost(name),
        ))
    _read_database(status, warehouse)
    budget = status.budget
    for item in status.objects:
        if item.loadable:
            budget.creates_to_load += item.left_to_load or 0
            budget.tokens_to_load += item.tokens_to_load
        else:
            budget.creates_waiting += item.staged or 0
            budget.tokens_waiting += (item.staged or 0) * item.create_cost
    status.next_command, status.advice = advise(status)
    return status


# -- what is on disk -----------------------------------------------------------------------------


def _count_rows(directory: Path) -> int | None:
    """Rows of a Parquet table from its metadata, or None when it was never written."""
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return None
    return ds.dataset(directory, format="parquet").count_rows()


def _raw_counts(warehouse: Warehouse) -> tuple[dict[str, int], str | None]:
    """Entity set -> extracted rows, and when the latest extract finished."""
    counts: dict[str, int] = {}
    latest: str | None = None
    root = warehouse.home / "raw"
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if not directory.is_dir() or directory.name.startswith((".", "schema_")):
            continue
        cursor_path = directory / CURSOR_FILE
        cursor: dict[str, Any] = {}
        if cursor_path.exists():
            try:
                cursor = json.loads(cursor_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                cursor = {}
        rows = cursor.get("rows")
        if not isinstance(rows, int):
            rows = _count_rows(directory)
        if rows is None:
            continue
        counts[directory.name] = rows
        at = cursor.get("extracted_at")
        if isinstance(at, str) and (latest is None or at > latest):
            latest = at
    return counts, latest


def _read_plan(status: Status, mappings_dir: Path) -> None:
    present = [name for name in PLAN_FILES if (mappings_dir / name).exists()]
    if not present:
        status.plan, status.plan_detail = "missing", f"no plan in {mappings_dir}"
        return
    missing = [name for name in PLAN_FILES if name not in present]
    if missing:
        status.plan, status.plan_detail = "incomplete", f"{', '.join(missing)} missing from {mappings_dir}"
        return
    path = mappings_dir / CONFIRMATION_FILE
    if not path.exists():
        status.plan, status.plan_detail = "unconfirmed", "written, not confirmed"
        return
    try:
        record = Confirmation.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except Exception as error:  # noqa: BLE001 - a damaged confirmation is a plan to confirm again
        status.plan, status.plan_detail = "unconfirmed", f"{CONFIRMATION_FILE} is unreadable ({type(error).__name__})"
        return
    status.confirmed_by = record.confirmed_by
    status.confirmed_at = _parse_time(record.confirmed_at)
    files = plan_files(mappings_dir)
    if plan_digest(files) != record.digest:
        changed = sorted(name for name in set(files) | set(record.files) if files.get(name) != record.files.get(name))
        status.plan, status.plan_detail = "changed", f"changed since it was confirmed ({', '.join(changed)})"
        return
    status.plan, status.plan_detail = "confirmed", f"confirmed by {record.confirmed_by} at {record.confirmed_at}"


# -- what is in DuckDB ---------------------------------------------------------------------------


def _read_database(status: Status, warehouse: Warehouse) -> None:
    if not warehouse.database_path.exists():
        for item in status.objects:  # nothing has been loaded without a warehouse
            item.loaded = 0
            item.left_to_load = (item.staged or 0) if item.loadable else None
            item.rejected_records = item.rejected_values = 0 if item.staged is not None else None
        return
    try:
        with warehouse.connect(read_only=True) as con:
            tables = _tables(con)
            _read_rejects(status, con, tables)
            _read_loaded(status, warehouse, con, tables)
            _read_verification(status, con, tables)
            _read_runs(status.budget, con, tables)
    except duckdb.Error as error:
        message = str(error).splitlines()[0]
        reason = ("another process holds its write lock (a running step: DuckDB allows one writer)" if "lock" in message.lower()
                  else f"it could not be read: {message}")
        status.warehouse_note = (f"{warehouse.database_path.name} is not readable now, {reason}; the loaded, rejected and "
                                 "verified counts and the token figures are unknown")
        for item in status.objects:
            item.loaded = item.left_to_load = item.rejected_records = item.rejected_values = None
            item.verified = item.missing = item.differing = None


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """`schema.table` -> its columns, for every base table."""
    out: dict[str, set[str]] = {}
    for schema, table, column in con.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE table_schema IN ('staged', 'idmap', 'audit', 'validation')"
    ).fetchall():
        out.setdefault(f"{schema}.{table}", set()).add(column)
    return out


def _read_rejects(status: Status, con: duckdb.DuckDBPyConnection, tables: dict[str, set[str]]) -> None:
    rows: dict[str, tuple[int, int]] = {}
    if {"object", "field", "source_id"} <= tables.get("staged.rejects", set()):
        # A whole record: field `*` (the transform) or no field (Pipedrive refused it); values otherwise.
        rows = {name: (int(records), int(values)) for name, records, values in con.execute(
            "SELECT object, count(DISTINCT source_id) FILTER (WHERE field IS NULL OR field = '*'), "
            "count(*) FILTER (WHERE field IS NOT NULL AND field <> '*') FROM staged.rejects GROUP BY object"
        ).fetchall()}
    for item in status.objects:
        item.rejected_records, item.rejected_values = rows.get(item.name, (0, 0))


def _read_loaded(status: Status, warehouse: Warehouse, con: duckdb.DuckDBPyConnection, tables: dict[str, set[str]]) -> None:
    for item in status.objects:
        table = f"idmap.{item.name}"
        if "source_id" not in tables.get(table, set()):
            item.loaded = 0
            item.left_to_load = (item.staged or 0) if item.loadable else None
            continue
        loaded, last = con.execute(f'SELECT count(*), max(loaded_at) FROM idmap."{item.name}"').fetchone()  # type: ignore[misc]
        item.loaded, item.last_loaded_at, item.loadable = int(loaded), _utc(last), True
        if item.staged is None:
            item.left_to_load = 0 if item.loadable else None
            continue
        pattern = str(warehouse.staged_path(item.name).resolve() / "*.parquet").replace("'", "''")
        left = con.execute(
            f"SELECT count(*) FROM read_parquet('{pattern}', union_by_name = true) s "
            f'WHERE NOT EXISTS (SELECT 1 FROM idmap."{item.name}" i WHERE i.source_id = s.source_id)'
        ).fetchone()[0]  # type: ignore[index]
        item.left_to_load = int(left)


def _read_verification(status: Status, con: duckdb.DuckDBPyConnection, tables: dict[str, set[str]]) -> None:
    if not {"object", "field", "compared", "differing", "missing", "checked_at"} <= tables.get("validation.summary", set()):
        return
    records = list(RECORD_ROWS)
    found = {row[0]: row[1:] for row in con.execute(
        "SELECT object, sum(compared) FILTER (WHERE list_contains(?, field)), sum(missing) FILTER (WHERE list_contains(?, field)), "
        "sum(differing) FILTER (WHERE NOT list_contains(?, field)), max(checked_at) FROM validation.summary GROUP BY object",
        [records, records, records],
    ).fetchall()}
    for item in status.objects:
        if item.name in found:
            compared, missing, differing, checked_at = found[item.name]
            item.verified, item.missing, item.differing = int(compared or 0), int(missing or 0), int(differing or 0)
            item.verified_at, item.verifiable = _utc(checked_at), True


def _read_runs(budget: Budget, con: duckdb.DuckDBPyConnection, tables: dict[str, set[str]]) -> None:
    columns = tables.get("audit.runs", set())
    if not {"step", "finished_at", "tokens", "requests", "daily_token_limit", "daily_tokens_remaining"} <= columns:
        return  # never recorded (or the shape of an older catalog, which nothing wrote)
    steps, tokens, requests, limited = con.execute(
        "SELECT count(*), coalesce(sum(tokens), 0), coalesce(sum(requests), 0), coalesce(sum(rate_limited), 0) "
        "FROM audit.runs WHERE finished_at >= ?",
        [_today()],
    ).fetchone()  # type: ignore[misc]
    budget.steps_today, budget.tokens_today, budget.requests_today, budget.rate_limited_today = (
        int(steps), int(tokens), int(requests), int(limited)
    )
    # The latest figure of each, from the last step whose responses carried it.
    limit, remaining, reported_at = con.execute(
        "SELECT arg_max(daily_token_limit, finished_at) FILTER (WHERE daily_token_limit IS NOT NULL), "
        "arg_max(daily_tokens_remaining, finished_at) FILTER (WHERE daily_tokens_remaining IS NOT NULL), "
        "max(finished_at) FILTER (WHERE daily_tokens_remaining IS NOT NULL) FROM audit.runs"
    ).fetchone()  # type: ignore[misc]
    budget.daily_token_limit = None if limit is None else int(limit)
    budget.daily_tokens_remaining = None if remaining is None else int(remaining)
    budget.reported_at = _utc(reported_at)


# -- what to run next ----------------------------------------------------------------------------


def advise(status: Status) -> tuple[str | None, str]:
    """(the next command, why), from the state alone."""
    if status.raw_tables == 0:
        return "migrate audit", ("Nothing has been extracted from Dynamics yet. `migrate audit` discovers the schema, extracts "
                                 "every table and reports what there is to move and what it will cost in Pipedrive tokens.")
    if status.plan in ("missing", "incomplete"):
        return "migrate plan", (f"The plan is {status.plan} ({status.plan_detail}). `migrate plan` proposes the field, owner, "
                                "stage and custom-entity maps from the extracted data; files you edited are kept.")
    if status.plan in ("unconfirmed", "changed"):
        return "migrate confirm", (f"The plan is {status.plan_detail}: nothing is staged or loaded until a person confirms it. "
                                   "Review the maps, then `migrate confirm` shows what blocks and the decisions it takes.")
    if status.warehouse_note:
        return None, "Run `migrate status` again when the step writing the warehouse has ended."
    loadable = [item for item in status.objects if item.loadable]
    unstaged = [item.name for item in loadable if item.staged is None]
    if not any(item.loaded for item in loadable):
        return "migrate sample", ("The plan is confirmed and nothing is in Pipedrive yet. `migrate sample` loads a slice that "
                                  "covers every object, field, stage and owner bucket and diffs it, so the plan is checked on "
                                  "real records first; `migrate run` then loads the rest (or everything at once, skipping the sample).")
    if unstaged:
        return "migrate run", (f"The plan is confirmed and {_names(unstaged)} {'is' if len(unstaged) == 1 else 'are'} not staged "
                               "yet. `migrate run` transforms, provisions, loads and verifies, resuming where it stopped.")
    stale = [item.name for item in loadable if status.confirmed_at and item.staged_at and item.staged_at < status.confirmed_at]
    if stale:
        return "migrate run", (f"The plan was confirmed after {_names(stale)} {'was' if len(stale) == 1 else 'were'} last staged. "
                               "`migrate run` stages them again under the confirmed plan and loads what is new.")
    left = [item for item in loadable if item.left_to_load]
    if left:
        budget = status.budget
        need = f"{sum(i.left_to_load or 0 for i in left):,} records of {_names([i.name for i in left])} are left to load " \
               f"(about {budget.tokens_to_load:,} tokens)"
        cheapest = min(item.create_cost for item in left)
        if budget.reported_today and budget.daily_tokens_remaining is not None and budget.daily_tokens_remaining < cheapest:
            return "migrate run", (f"{need}, but Pipedrive's daily token budget was spent at {budget.reported_at:%H:%M} UTC. "
                                   "Run `migrate run` after it resets: the load resumes where it stopped.")
        return "migrate run", f"{need}. `migrate run` resumes where the last run stopped."
    unverified = [item.name for item in loadable if item.verifiable and item.verification_stale]
    if unverified:
        return "migrate verify", (f"{_names(unverified)}: loaded since the last field-level diff. `migrate verify` reads "
                                  "them back (list pages, a few tokens) and compares every field.")
    wrong = [item for item in loadable if (item.differing or 0) + (item.missing or 0) > 0]
    if wrong:
        detail = ", ".join(f"{i.name}: {i.differing or 0} values differ, {i.missing or 0} records missing" for i in wrong)
        return "migrate verify", (f"The last verify found differences ({detail}). Read them in validation.field_diff, correct "
                                  "the plan or the records, then `migrate verify` checks again.")
    waiting = [item.name for item in status.objects if not item.loadable and item.staged]
    done = "Everything the loader takes is in Pipedrive and verified field by field."
    if waiting:
        done += f" {_names(waiting)} {'is' if len(waiting) == 1 else 'are'} staged and wait{'s' if len(waiting) == 1 else ''} for the loader."
    return None, done


def _names(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return _parse_time(str(value))


def _parse_time(text: str) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        return None
