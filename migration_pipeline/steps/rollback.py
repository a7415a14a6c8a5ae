"""Rollback: put Pipedrive back as it was before the migration, from the audit trail.

What is undone, for one run (`run`) or for every run (`run=None`):

- **records the migration created** are deleted, in reverse load order (files, notes,
  activities, leads, deal products, deals, products, persons, organization relationships,
  organizations). They are found in the write journal (`create` with outcome `ok`) and in the
  ID maps (which also hold the in-doubt creates the loader settled by reading back).
- **records the migration updated but did not create** get their before-image back
  (`update` entries carry it), the oldest image last so it is the one that stays. Today every
  update the loader sends goes to a record it created (links, archiving, late fields), and a
  created record is simply deleted, so this is a safety net for writers that update more.
- **what provisioning created** (journaled since this issue: custom fields, pipelines, stages,
  lead labels) is removed only when every run is rolled back: it is shared by all runs.
- **records that existed before the migration** (`idmap.existing`) are never written to; their
  links are forgotten, so a later run matches them again.

Each delete is journaled (`journal/rollback-<id>.jsonl`: intent before, outcome after) and its
ID-map rows are forgotten once its phase ends. A 404 on delete means the record is already
gone (a rollback killed after the delete and before its outcome) and counts as done. Running
again after a kill re-plans from the journal and the ID maps, skipping what is done, so a
rollback killed midway completes when run again. Afterwards the ID maps of the undone runs are
empty and a later `migrate run` creates everything again (the loader's read-back skips
soft-deleted records).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from migration_pipeline.errors import ApiError, BudgetExhausted, ConfigurationError, MigrationError
from migration_pipeline.pipedrive.client import PipedriveClient, version_for
from migration_pipeline.pipedrive.costs import lookup, operation
from migration_pipeline.pipedrive.errors import TrafficBlocked
from migration_pipeline.steps.existing import EXISTING_TABLE, _ensure_existing
from migration_pipeline.steps.provision import FIELDS_TABLE
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, request_digest

log = logging.getLogger(__name__)

ROLLBACK_PREFIX = "rollback-"
# Reverse load order: what hangs on a record goes before it. Provisioning comes last.
RECORD_OBJECTS = ("files", "notes", "activities", "leads", "deal_products", "deals", "products", "persons",
                  "organizations_relationships", "organizations")
PROVISIONED_OBJECTS = ("stages", "pipelines", "lead_labels", "fields")
ORDER = (*RECORD_OBJECTS, *PROVISIONED_OBJECTS)
RESOURCES = {"files": "files", "notes": "notes", "activities": "activities", "leads": "leads", "deals": "deals",
             "products": "products", "persons": "persons", "organizations_relationships": "organizationRelationships",
             "organizations": "organizations", "stages": "stages", "pipelines": "pipelines", "lead_labels": "leadLabels"}
# ID maps that provisioning keeps (found records included): emptied when every run is rolled back.
PROVISION_IDMAPS = ("stages", "lead_labels")
GONE = (404, 410)


@dataclass(frozen=True)
class Action:
    operation: str  # delete | restore
    object: str
    pipedrive_id: str
    source_id: str  # the Dynamics id(s) for the audit trail; for a restore, "<run>#<seq>" of the update undone
    body: dict[str, Any] | None = None  # the before-image a restore writes back


@dataclass
class RollbackPlan:
    run: str | None
    runs: list[str]
    actions: list[Action]
    in_doubt: list[str] = field(default_factory=list)  # creates with no known id (none today: the loader settles them)
    links_to_forget: int = 0  # links to pre-existing records, forgotten without a write

    def counts(self) -> list[tuple[str, str, int]]:
        counted = Counter((action.object, action.operation) for action in self.actions)
        return [(name, operation, counted[(name, operation)]) for name in ORDER for operation in ("delete", "restore")
                if counted[(name, operation)]]

    def tokens(self) -> int:
        """The tokens the actions cost at the specs' prices (deal products read back on top: 10 per 100 deals)."""
        total = 0
        for action in self.actions:
            path = _path(action.object, action.pipedrive_id, "1")
            version = version_for(path)
            method = "DELETE" if action.operation == "delete" else (
                "PATCH" if version == "v2" or lookup(version, "PATCH", path) else "PUT")
            total += operation(version, method, path).cost
        return total

    def lines(self) -> list[str]:
        scope = f"run {self.run}" if self.run else f"every run ({len(self.runs)} in the journal)"
        lines = [f"Rollback of {scope}:"]
        for name, operation, count in self.counts():
            lines.append(f"  {operation:<8} {count:>7,}  {name}")
        if not self.actions:
            lines.append("  nothing to undo in Pipedrive")
        if self.links_to_forget:
            lines.append(f"  {self.links_to_forget:,} links to records that existed before the migration are forgotten "
                         "(those records are not touched)")
        if self.in_doubt:
            lines.append(f"  {len(self.in_doubt)} creates in doubt with no Pipedrive id: check them by hand ({', '.join(self.in_doubt[:5])})")
        lines.append(f"  about {self.tokens():,} tokens")
        return lines


@dataclass
class RollbackResult:
    run_id: str
    deleted: Counter[str] = field(default_factory=Counter)
    already_gone: Counter[str] = field(default_factory=Counter)
    restored: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _path(object_name: str, pipedrive_id: str, deal_id: str | None = None) -> str:
    if object_name == "deal_products":
        return f"deals/{deal_id}/products/{pipedrive_id}"
    if object_name == "fields":
        entity, code = pipedrive_id.split(":", 1)
        return f"{entity}Fields/{code}"
    return f"{RESOURCES[object_name]}/{pipedrive_id}"


def _operations(warehouse: Warehouse) -> pd.DataFrame:
    warehouse.import_journal()
    return warehouse.query("SELECT * FROM audit.operations ORDER BY run_id, seq")


def _idmap_rows(warehouse: Warehouse, name: str) -> pd.DataFrame:
    with warehouse.connect() as con:
        table = warehouse._ensure_idmap(con, name)
        return con.execute(f"SELECT source_id, pipedrive_id, run_id FROM {table}").df()


def _existing(warehouse: Warehouse) -> pd.DataFrame:
    with warehouse.connect() as con:
        _ensure_existing(con)
        return con.execute(f"SELECT object, source_id, pipedrive_id, run_id FROM {EXISTING_TABLE}").df()


def plan_rollback(warehouse: Warehouse, run: str | None = None) -> RollbackPlan:
    """What a rollback of `run` (every run when None) would do, less what an earlier rollback already did."""
    ops = _operations(warehouse)
    ours = ops[~ops["run_id"].str.startswith(ROLLBACK_PREFIX)]
    undone = ops[ops["run_id"].str.startswith(ROLLBACK_PREFIX) & (ops["outcome"] == "ok")]
    # Deleted already: by an earlier rollback, or by a delta run (a record deleted in Dynamics).
    deleted = {(row.object, str(row.pipedrive_id)) for row in ops[ops["outcome"] == "ok"].itertuples() if row.operation == "delete"}
    restored = {str(row.source_id) for row in undone.itertuples() if row.operation == "restore"}
    idmaps = {name: _idmap_rows(warehouse, name) for name in RECORD_OBJECTS}
    runs = sorted(set(ours["run_id"]) | {r for frame in idmaps.values() for r in frame["run_id"].dropna()})
    if run is not None and run not in runs:
        raise ConfigurationError(f"No run {run!r} wrote to Pipedrive (runs in the journal: {', '.join(runs) or 'none'}).",
                                 hint="Run `migrate rollback` without --run to undo every run, or name one of those.")
    if run is not None:
        ours = ours[ours["run_id"] == run]
    existing = _existing(warehouse)
    pre_existing = {(row.object, str(row.pipedrive_id)) for row in existing.itertuples()}

    created: dict[str, dict[str, set[str]]] = {name: defaultdict(set) for name in ORDER}
    in_doubt = []
    for row in ours[ours["operation"] == "create"].itertuples():
        if row.object not in created or (run is not None and row.object in PROVISIONED_OBJECTS):
            continue
        if row.outcome == "ok" and isinstance(row.pipedrive_id, str):
            key = f"{row.source_id.split(':', 1)[0]}:{row.pipedrive_id}" if row.object == "fields" else row.pipedrive_id
            created[row.object][key].add(str(row.source_id))
        elif row.outcome in ("in_doubt", None) and row.object in PROVISIONED_OBJECTS:
            in_doubt.append(f"{row.object} {row.source_id}")
    for name, frame in idmaps.items():
        if run is not None:
            frame = frame[frame["run_id"] == run]
        for row in frame.itertuples():
            created[name][str(row.pipedrive_id)].add(str(row.source_id))
    actions = []
    for name in ORDER:
        for pipedrive_id, source_ids in created[name].items():
            if (name, pipedrive_id) in pre_existing or (name, pipedrive_id) in deleted:
                continue
            actions.append(Action("delete", name, pipedrive_id, ",".join(sorted(source_ids))))
    # Before-images of records that stay: the newest update undone first, so the oldest image is the one left.
    updates = ours[(ours["operation"] == "update") & ours["before_image"].notna() & ours["outcome"].isin(["ok", "in_doubt"])]
    for row in updates.sort_values(["at", "seq"], ascending=False).itertuples():
        key = f"{row.run_id}#{row.seq}"
        if row.object not in RESOURCES or key in restored or row.pipedrive_id in created[row.object]:
            continue
        actions.append(Action("restore", row.object, str(row.pipedrive_id), key, json.loads(row.before_image)))
    links = existing if run is None else existing[existing["run_id"] == run]
    return RollbackPlan(run, runs, actions, in_doubt, links_to_forget=len(links))


async def _deal_of_products(client: PipedriveClient, warehouse: Warehouse, attachments: Iterable[str]) -> dict[str, str]:
    """Attachment id -> deal id of the deal products still attached (bulk list reads, 100 deals a call)."""
    wanted = set(attachments)
    if not wanted:
        return {}
    deal_ids = sorted({str(pid) for pid in _idmap_rows(warehouse, "deals")["pipedrive_id"]}, key=int)
    found: dict[str, str] = {}
    for start in range(0, len(deal_ids), 100):
        async for record in client.iter_v2("deals/products", {"deal_ids": ",".join(deal_ids[start:start + 100])}):
            if str(record["id"]) in wanted:
                found[str(record["id"])] = str(record["deal_id"])
    return found


async def rollback(client: PipedriveClient, warehouse: Warehouse, run: str | None = None, concurrency: int = 8,
                   rollback_id: str | None = None) -> RollbackResult:
    """Undo `run` (every run when None), as `plan_rollback` shows; resumable (see the module doc)."""
    started = time.monotonic()
    plan = plan_rollback(warehouse, run)
    result = RollbackResult(rollback_id or f"{ROLLBACK_PREFIX}{uuid.uuid4()}")
    stopped: list[MigrationError] = []
    with Journal(warehouse.journal_dir, result.run_id) as journal:
        for name in ORDER:
            for operation in ("delete", "restore"):
                actions = [action for action in plan.actions if action.object == name and action.operation == operation]
                if actions and not stopped:
                    await _apply(client, warehouse, journal, actions, concurrency, result, stopped)
    _forget(warehouse, run, complete=not stopped and not result.failed)
    warehouse.import_journal()
    result.seconds = time.monotonic() - started
    if stopped:
        raise stopped[0]
    return result


async def _apply(client: PipedriveClient, warehouse: Warehouse, journal: Journal, actions: list[Action], concurrency: int,
                 result: RollbackResult, stopped: list[MigrationError]) -> None:
    name = actions[0].object
    deals = await _deal_of_products(client, warehouse, [a.pipedrive_id for a in actions]) if name == "deal_products" else {}
    slots = asyncio.Semaphore(concurrency)
    done: list[str] = []

    async def one(action: Action) -> None:
        async with slots:
            if stopped:
                return
            if name == "deal_products" and action.pipedrive_id not in deals:
                path = None  # no longer attached to any of our deals: gone already
            else:
                path = _path(name, action.pipedrive_id, deals.get(action.pipedrive_id))
            method = "DELETE" if action.operation == "delete" else "PATCH"
            intent = await journal.aintent(action.operation, name, action.source_id,
                                           request_digest(method, path or name, action.body))
            try:
                if path is None:
                    raise ApiError("not attached any more", status_code=404)
                if action.operation == "delete":
                    await client.request("DELETE", path, version=version_for(path))
                else:
                    await client.update(RESOURCES[name], action.pipedrive_id, action.body or {})
            except (BudgetExhausted, TrafficBlocked) as error:
                await journal.aoutcome(intent, "not_applied", pipedrive_id=action.pipedrive_id, detail=error.message)
                stopped.append(error)
                return
            except ApiError as error:
                if action.operation == "delete" and error.status_code in GONE:
                    await journal.aoutcome(intent, "ok", pipedrive_id=action.pipedrive_id, detail="already gone")
                    result.already_gone[name] += 1
                    done.append(action.pipedrive_id)
                    return
                await journal.aoutcome(intent, "failed", pipedrive_id=action.pipedrive_id, detail=error.message)
                result.failed.append(f"{action.operation} {name} {action.pipedrive_id}: {error.message}")
                return
            await journal.aoutcome(intent, "ok", pipedrive_id=action.pipedrive_id)
            (result.deleted if action.operation == "delete" else result.restored)[name] += 1
            if action.operation == "delete":
                done.append(action.pipedrive_id)

    await asyncio.gather(*(one(action) for action in actions))
    if done and name in RECORD_OBJECTS:
        _forget_ids(warehouse, name, done)
    log.info("rollback %s: %d deleted, %d already gone, %d restored", name, result.deleted[name], result.already_gone[name],
             result.restored[name])


def _forget_ids(warehouse: Warehouse, name: str, pipedrive_ids: list[str]) -> None:
    with warehouse.connect() as con:
        table = warehouse._ensure_idmap(con, name)
        con.execute(f"DELETE FROM {table} WHERE pipedrive_id IN (SELECT unnest(?))", [pipedrive_ids])


def _forget(warehouse: Warehouse, run: str | None, complete: bool) -> None:
    """Forget the links to pre-existing records of the runs undone, and, once all is undone, every ID-map row of them."""
    existing = _existing(warehouse)
    links = existing if run is None else existing[existing["run_id"] == run]
    with warehouse.connect() as con:
        for name, group in links.groupby("object"):
            table = warehouse._ensure_idmap(con, str(name))
            con.execute(f"DELETE FROM {table} WHERE source_id IN (SELECT unnest(?))", [list(group["source_id"])])
        con.execute(f"DELETE FROM {EXISTING_TABLE}" + ("" if run is None else " WHERE run_id = ?"), [] if run is None else [run])
        if not complete:
            return
        if run is None:
            for name in (*RECORD_OBJECTS, *PROVISION_IDMAPS):
                con.execute(f"DELETE FROM {warehouse._ensure_idmap(con, name)}")
            con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} (object VARCHAR)")
            con.execute(f"DELETE FROM {FIELDS_TABLE}")
        else:
            for name in RECORD_OBJECTS:
                con.execute(f"DELETE FROM {warehouse._ensure_idmap(con, name)} WHERE run_id = ?", [run])
