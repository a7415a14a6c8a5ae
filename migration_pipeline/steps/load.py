"""Load: staged payloads -> Pipedrive records, with the ID map and the write journal kept as it goes.

One loop serves every table (`steps/targets.py` says how each is sent and recognised).
Idempotent and resumable: rows already in the ID map are skipped; before creating anything,
what Pipedrive holds is read back (list pages, 10 tokens per 500 rows) and every staged row
whose record is already there (by its "Dynamics ID", or its fingerprint for objects without
one) is linked, which also settles writes a crash or an in-doubt answer left unrecorded.
Each create is journaled before it is sent and after it returns, and the ID map is updated
in small batches, so a kill loses at most the batch in flight, which the read-back then finds.

A write answered by a 5xx, a timeout or a dropped connection is in doubt: the server may
have applied it. It is never resent blindly: after the pass, Pipedrive is read back; what it
holds is linked, and only what it proves absent is sent again (up to `ROUNDS` passes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from migration_pipeline.errors import ApiError, BudgetExhausted, ConfigurationError, MigrationError
from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.payload import CUSTOM_PREFIX, LINKED_OBJECTS, REF_PREFIX, PayloadFields, build_payload
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.mapping.transform import REJECT_COLUMNS
from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.errors import TrafficBlocked, WriteInDoubt
from migration_pipeline.progress import Progress
from migration_pipeline.steps.existing import MatchRule, existing_ids, link_existing
from migration_pipeline.steps.objects import OBJECTS, MigratedObject, by_name
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.targets import TARGETS, Body, Record, Target, files_target, v2_object
from migration_pipeline.validation.diff import matches
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, request_digest

log = logging.getLogger(__name__)

ID_BATCH = 100
# Links rows still to create to records the account held before the migration: source id -> Pipedrive id.
LinkExisting = Callable[[pd.DataFrame], Awaitable[dict[str, str]]]
ROUNDS = 3  # passes over in-doubt writes: send, read back, resend what Pipedrive proved absent


@dataclass
class LoadResult:
    object: str
    staged: int
    already_loaded: int = 0
    linked_by_read_back: int = 0
    linked_existing: int = 0  # records that existed in Pipedrive before the migration, linked, not duplicated
    created: int = 0
    failed: int = 0
    in_doubt: int = 0
    resent: int = 0  # in-doubt writes Pipedrive proved it had not applied, sent again
    values_refused: int = 0  # values Pipedrive has no option for (in staged.rejects)
    deferred_links: int = 0  # links to records not in Pipedrive yet (set when those are loaded)
    links_set: int = 0  # records updated after their create: links to records loaded since, late fields
    deleted: int = 0  # records deleted in Pipedrive because a delta pickup found them deleted in Dynamics
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def wrote_nothing(self) -> bool:
        return self.created == 0 and self.failed == 0 and self.in_doubt == 0


class HeldRecords:
    """What Pipedrive holds of one target, by identity, less the records an ID map already claims."""

    def __init__(self, target: Target, fields: PayloadFields, claimed: set[str]) -> None:
        self.target, self.fields, self.claimed = target, fields, claimed
        self.by_identity: dict[Hashable, list[str]] = defaultdict(list)
        self.records: dict[str, Record] = {}

    @classmethod
    async def read(cls, client: PipedriveClient, target: Target, fields: PayloadFields, bodies: list[Body],
                   claimed: set[str]) -> HeldRecords:
        held = cls(target, fields, claimed)
        async for record in target.read_back(client, fields, bodies):
            record_id = target.record_id(record)
            held.records[record_id] = record
            identity = target.record_identity(record, fields)
            if identity is not None and record_id not in claimed:
                held.by_identity[identity].append(record_id)
        return held

    def claim(self, body: Body) -> str | None:
        """The id of an unclaimed record this body made, if Pipedrive holds one (each record claimed once)."""
        identity = self.target.identity(body, self.fields)
        candidates = self.by_identity.get(identity) if identity is not None else None
        while candidates:
            record_id = candidates.pop(0)
            if record_id not in self.claimed:
                self.claimed.add(record_id)
                return record_id
        return None


def body_of(target: Target, row: Mapping[str, Any], fields: PayloadFields, result: LoadResult, rejects: list[dict[str, Any]]) -> Body:
    payload = build_payload(row, fields)
    source_id = str(row["source_id"])
    rejects.extend(dict(object=target.name, source_id=source_id, field=name, value=value, reason=reason, rule="option")
                   for name, value, reason in payload.refused)
    result.values_refused += len(payload.refused)
    result.deferred_links += len(payload.deferred)
    return target.shape(payload.body, fields) if target.shape else payload.body


async def load_target(
    client: PipedriveClient,
    warehouse: Warehouse,
    mappings_dir: Path,
    target: Target,
    run_id: str,
    concurrency: int = 8,
    staged: pd.DataFrame | None = None,
    link_existing: LinkExisting | None = None,
    scope: Collection[str] | None = None,
) -> LoadResult:
    """Create every staged record of `target` that Pipedrive does not hold yet.

    `link_existing` links rows to records the account held before the migration (persons,
    organizations); it is asked only about rows whose own record Pipedrive does not hold.
    `scope`, when given, is the source ids to load (a sample, `steps/sample.py`): the other rows
    are left as if they were not staged.
    """
    require_confirmed(mappings_dir)
    started = time.monotonic()
    fields = payload_fields(warehouse, target.fields_object)
    if target.needs_dynamics_id and DYNAMICS_ID_FIELD not in fields.codes:
        raise ConfigurationError(
            f"The {DYNAMICS_ID_FIELD!r} field of {target.name} has not been provisioned.",
            hint="Run the provisioning step first (`migrate run` does it).",
        )
    if staged is None:
        staged = warehouse.read_staged(target.name) if warehouse.staged_path(target.name).exists() else pd.DataFrame(columns=["source_id"])
    if scope is not None:
        staged = staged[staged["source_id"].astype(str).isin(scope)]
    result = LoadResult(target.name, staged=len(staged))
    known = warehouse.idmap(target.name)
    todo = staged[~staged["source_id"].astype(str).isin(known)]
    result.already_loaded = len(staged) - len(todo)
    rejects: list[dict[str, Any]] = []
    if not todo.empty:
        await _create_missing(client, warehouse, target, fields, todo, set(known.values()), run_id, concurrency, result, rejects,
                              link_existing)
    result.failures = [row["reason"] for row in rejects if row["rule"] == "load"][:5]
    if rejects:
        warehouse.replace_rows(
            "staged.rejects",
            pd.DataFrame(rejects, columns=REJECT_COLUMNS),
            where="object = ? AND rule IN ('load', 'option') AND source_id IN (SELECT unnest(?))",
            params=[target.name, [row["source_id"] for row in rejects]],
        )
    if target.late:
        result.links_set += await settle_late_fields(client, warehouse, target, fields, staged, run_id)
    warehouse.import_journal()
    result.seconds = time.monotonic() - started
    return result


async def _create_missing(client: PipedriveClient, warehouse: Warehouse, target: Target, fields: PayloadFields, todo: pd.DataFrame,
                          claimed: set[str], run_id: str, concurrency: int, result: LoadResult, rejects: list[dict[str, Any]],
                          link_existing: LinkExisting | None) -> None:
    rows = [(str(row["source_id"]), body_of(target, row, fields, result, rejects)) for row in todo.to_dict("records")]
    bodies = [body for _, body in rows]
    held = await HeldRecords.read(client, target, fields, bodies, claimed)
    linked = {}
    pending = []
    for source_id, body in rows:
        record_id = held.claim(body)
        if record_id is None:
            pending.append((source_id, {key: value for key, value in body.items() if key not in target.late}))
        else:
            linked[source_id] = record_id
    warehouse.record_ids(target.name, linked, run_id)
    result.linked_by_read_back = len(linked)
    if link_existing is not None and pending:
        existing = await link_existing(todo[todo["source_id"].astype(str).isin([source_id for source_id, _ in pending])])
        result.linked_existing = len(existing)
        pending = [(source_id, body) for source_id, body in pending if source_id not in existing]

    for round_number in range(1, ROUNDS + 1):
        in_doubt = await _send_all(client, warehouse, target, pending, run_id, concurrency, result, rejects)
        if not in_doubt:
            return
        # Settle in-doubt writes: what Pipedrive applied is linked; what it proves absent is sent again.
        held = await HeldRecords.read(client, target, fields, bodies, set(warehouse.idmap(target.name).values()))
        settled = {}
        pending = []
        for source_id, body in in_doubt:
            record_id = held.claim(body)
            if record_id is None:
                pending.append((source_id, body))
            else:
                settled[source_id] = record_id
        warehouse.record_ids(target.name, settled, run_id)
        result.created += len(settled)
        if round_number < ROUNDS:
            result.resent += len(pending)
    result.in_doubt = len(pending)


async def _send_all(client: PipedriveClient, warehouse: Warehouse, target: Target, pending: list[tuple[str, Body]], run_id: str,
                    concurrency: int, result: LoadResult, rejects: list[dict[str, Any]]) -> list[tuple[str, Body]]:
    """One pass of creates over `pending`; returns the rows whose writes ended in doubt."""
    created_ids: dict[str, str] = {}
    in_doubt: list[tuple[str, Body]] = []
    stopped: list[MigrationError] = []
    batches: Iterator[list[tuple[str, Body]]] = iter(target.batches(pending))

    with Journal(warehouse.journal_dir, run_id) as journal, \
            Progress(f"load {target.name}", total=len(pending), unit="records", tokens=lambda: client.usage.tokens, logger=log) as progress:
        # The ID map is upserted on a thread, one upsert at a time (DuckDB takes one writer), off the event loop.
        one_writer = asyncio.Lock()

        async def record_ids(ids: dict[str, str]) -> None:
            async with one_writer:
                await asyncio.to_thread(warehouse.record_ids, target.name, ids, run_id)

        async def worker() -> None:
            for batch in batches:
                if stopped:  # the budget is spent or the account blocked: hand out nothing more
                    return
                intents = await asyncio.gather(*(journal.aintent("create", target.name, source_id, request_digest("POST", target.resource, body))
                                                 for source_id, body in batch))
                try:
                    records = await target.send(client, target.resource, batch)
                except WriteInDoubt as error:
                    for intent in intents:
                        await journal.aoutcome(intent, "in_doubt", detail=error.message)
                    in_doubt.extend(batch)
                    progress.advance(len(batch))
                    continue
                except (BudgetExhausted, TrafficBlocked) as error:
                    # Refused before anything was applied: recorded, left for the next run, and no more sent.
                    for intent in intents:
                        await journal.aoutcome(intent, "not_applied", detail=error.message)
                    stopped.append(error)
                    return
                except (ApiError, ValueError) as error:
                    message = getattr(error, "message", str(error))
                    for intent, (source_id, _) in zip(intents, batch, strict=True):
                        await journal.aoutcome(intent, "failed", detail=message)
                        rejects.append(dict(object=target.name, source_id=source_id, field=None, value=None,
                                            reason=f"Pipedrive refused the record: {message}", rule="load"))
                    result.failed += len(batch)
                    progress.advance(len(batch))
                    continue
                pairs = [(source_id, target.record_id(record)) for (source_id, _), record in zip(batch, records, strict=True)]
                # Durable before the ID map may record them: one group commit for the whole batch.
                await asyncio.gather(*(journal.aoutcome(intent, "ok", pipedrive_id=record_id)
                                       for intent, (_, record_id) in zip(intents, pairs, strict=True)))
                created_ids.update(pairs)
                result.created += len(batch)
                progress.advance(len(batch))
                if len(created_ids) >= ID_BATCH:
                    ids = dict(created_ids)
                    created_ids.clear()
                    await record_ids(ids)

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            async with one_writer:  # after an upsert still running on its thread
                warehouse.record_ids(target.name, created_ids, run_id)
        progress.close(failed=bool(stopped))

    if stopped:  # every worker has finished and its outcome is journaled; what was created is in the ID map
        warehouse.import_journal()
        raise stopped[0]
    return in_doubt


async def load_object(client: PipedriveClient, warehouse: Warehouse, mappings_dir: Path, item: MigratedObject, run_id: str,
                      concurrency: int = 8, rule: MatchRule | None = None, scope: Collection[str] | None = None) -> LoadResult:
    """Load one of the objects with a "Dynamics ID" (organizations, persons, products, deals), then set the links
    to it that earlier objects had to leave out.

    Persons and organizations the account held before the migration are linked by `rule`
    (`steps/existing.py`), never duplicated and never written to.
    """
    rule = rule or MatchRule()

    async def existing(rows: pd.DataFrame) -> dict[str, str]:
        code = payload_fields(warehouse, item.name).codes[DYNAMICS_ID_FIELD]
        return await link_existing(client, warehouse, item, rows, code, rule, run_id)

    result = await load_target(client, warehouse, mappings_dir, v2_object(item.name, item.resource), run_id, concurrency,
                               link_existing=existing, scope=scope)
    result.links_set += await settle_links(client, warehouse, run_id, linking_to=item.name)
    if scope is None:  # changes a delta pickup found (steps/delta.py): updated in place, deletes by its rule
        from migration_pipeline.steps.delta import apply_pending

        updated, deleted = await apply_pending(client, warehouse, item.name, run_id)
        result.links_set += updated
        result.deleted += deleted
    return result


async def settle_links(client: PipedriveClient, warehouse: Warehouse, run_id: str, linking_to: str | None = None) -> int:
    """Set the links a create had to leave out because their record was not in Pipedrive yet, now that it is.

    When `linking_to` (the object just loaded) is given, only the links to it, and its own records'
    links to anything, are looked at: a run that stopped before settling them settles them when
    that object's step runs again, before its field diff. Crash-safe by
    construction: what is missing is read back (one list read per object with such links), never
    remembered, so a run killed at any point settles the rest next time. Each update is
    journaled with the before-image of the fields it sets.
    """
    updated = 0
    for obj in OBJECTS:
        idmap = warehouse.idmap(obj.name)
        if not idmap or not warehouse.staged_path(obj.name).exists():
            continue
        fields = payload_fields(warehouse, obj.name)
        staged = warehouse.read_staged(obj.name)
        links = [c for c in staged.columns if _links_to(c, fields, None if obj.name == linking_to else linking_to)]
        if not links:
            continue
        wanted = {}
        for row in staged.loc[staged["source_id"].isin(idmap), ["source_id", *links]].to_dict("records"):
            body = build_payload(row, fields).body
            if body:
                wanted[str(row["source_id"])] = body
        updated += await _update_where_different(client, warehouse, obj.name, obj.resource, idmap, wanted, run_id)
    if updated:
        log.info("links: %d records updated with links to records loaded since", updated)
    return updated


def _links_to(column: str, fields: PayloadFields, linking_to: str | None) -> bool:
    if column.startswith(REF_PREFIX):
        linked = column.split(":", 2)[2]
    elif column.startswith(CUSTOM_PREFIX) and fields.types.get(column.removeprefix(CUSTOM_PREFIX)) in LINKED_OBJECTS:
        linked = LINKED_OBJECTS[fields.types[column.removeprefix(CUSTOM_PREFIX)]]
    else:
        return False
    return linking_to is None or linked == linking_to


async def settle_late_fields(client: PipedriveClient, warehouse: Warehouse, target: Target, fields: PayloadFields,
                             staged: pd.DataFrame, run_id: str) -> int:
    """Set the fields a create leaves out (`target.late`: a lead's `is_archived`) on the records that lack them."""
    idmap = warehouse.idmap(target.name)
    columns = ["source_id", *(column for column in target.late if column in staged.columns)]
    wanted = {}
    for row in staged.loc[staged["source_id"].isin(idmap), columns].to_dict("records"):
        body = {key: value for key, value in build_payload(row, fields).body.items() if value not in (None, False)}
        if body:
            wanted[str(row["source_id"])] = body
    if not wanted:
        return 0
    held = await HeldRecords.read(client, target, fields, [], set())
    return await _update_where_different(client, warehouse, target.name, target.resource, idmap, wanted, run_id, held.records)


async def _update_where_different(client: PipedriveClient, warehouse: Warehouse, name: str, resource: str | Callable[[Record], str],
                                  idmap: dict[str, str], wanted: dict[str, Body], run_id: str,
                                  records: dict[str, Record] | None = None) -> int:
    """PATCH each record whose held values (`records`, else read back) differ from `wanted`, journaled with the before-image.

    `resource` may depend on the record (a deal product lives under its deal)."""
    untouchable = existing_ids(warehouse, name)  # records the account held before the migration are never written to
    wanted = {source_id: body for source_id, body in wanted.items() if source_id not in untouchable}
    if not wanted:
        return 0
    if records is None:
        records = {str(record["id"]): record async for record in client.iterate(resource)}
    updated = 0
    with Journal(warehouse.journal_dir, run_id) as journal:
        for source_id, body in wanted.items():
            record = records.get(idmap[source_id])
            if record is None or all(matches(value, record.get(key)) for key, value in body.items()):
                continue
            before = {key: record.get(key) for key in body}
            path = resource(record) if callable(resource) else resource
            intent = journal.intent("update", name, source_id, request_digest("PATCH", path, body), before_image=before)
            try:
                await client.update(path, idmap[source_id], body)
            except ApiError as error:
                journal.outcome(intent, "failed", pipedrive_id=idmap[source_id], detail=error.message)
                continue
            journal.outcome(intent, "ok", pipedrive_id=idmap[source_id])
            updated += 1
    return updated


ARCHIVE_CANDIDATES = "deals_archive_candidates"


async def archive_closed_deals(client: PipedriveClient, warehouse: Warehouse, run_id: str, scope: Collection[str] | None = None) -> LoadResult:
    """Archive the closed deals the rules chose, once everything that hangs on them is loaded.

    Archived deals no longer count against the plan's record cap, and can no longer be edited,
    so this runs last. Journaled like every update; what is archived already is left alone.
    """
    started = time.monotonic()
    candidates = warehouse.read_staged(ARCHIVE_CANDIDATES) if warehouse.staged_path(ARCHIVE_CANDIDATES).exists() else pd.DataFrame(columns=["source_id"])
    if scope is not None:  # a sample archives the closed deals it holds (each sampled with everything on it)
        candidates = candidates[candidates["source_id"].astype(str).isin(scope)]
    result = LoadResult("deal_archive", staged=len(candidates))
    idmap = warehouse.idmap("deals")
    wanted = {str(source_id): {"is_archived": True} for source_id in candidates["source_id"] if str(source_id) in idmap}
    archived = {str(record["id"]) async for record in client.iter_v2("deals/archived")}
    result.already_loaded = sum(1 for source_id in wanted if idmap[source_id] in archived)
    todo = {source_id: body for source_id, body in wanted.items() if idmap[source_id] not in archived}
    records = {idmap[source_id]: {"is_archived": False} for source_id in todo}
    result.links_set = await _update_where_different(client, warehouse, "deals", "deals", idmap, todo, run_id, records)
    warehouse.import_journal()
    result.seconds = time.monotonic() - started
    return result


async def load_step(name: str, client: PipedriveClient, source: DataverseClient, warehouse: Warehouse, mappings_dir: Path,
                    run_id: str, rule: MatchRule | None = None, scope: Collection[str] | None = None) -> LoadResult:
    """The load of one `pipedrive/<name>` asset (`defs/pipedrive/assets.py` LOAD_STEPS); `scope`: only these source ids."""
    if name in {item.name for item in OBJECTS}:
        return await load_object(client, warehouse, mappings_dir, by_name(name), run_id, rule=rule, scope=scope)
    if name == "deal_archive":
        require_confirmed(mappings_dir)
        return await archive_closed_deals(client, warehouse, run_id, scope)
    # Changes a delta pickup found (steps/delta.py), applied first: a file or a deal product that must be created
    # again is deleted and forgotten there, and the load below creates it with what is new.
    updated = deleted = 0
    if scope is None:
        from migration_pipeline.steps.delta import apply_pending

        require_confirmed(mappings_dir)
        updated, deleted = await apply_pending(client, warehouse, name, run_id)
    if name == "files":
        lock = asyncio.Lock()

        async def fetch(annotation_id: str) -> bytes:
            async with lock:  # one body at a time: Dataverse limits concurrent requests per user
                return await asyncio.to_thread(source.download_annotation_body, annotation_id)

        target = files_target(fetch)
    else:
        target = TARGETS[name]
    result = await load_target(client, warehouse, mappings_dir, target, run_id, scope=scope)
    result.links_set += updated
    result.deleted += deleted
    return result
