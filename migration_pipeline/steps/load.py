"""Load: staged payloads -> Pipedrive records, with the ID map and the write journal kept as it goes.

Idempotent and resumable: rows already in the ID map are skipped; before creating anything,
the records that already carry a "Dynamics ID" in Pipedrive are read back (list pages, 10
tokens per 500 rows) and linked, which also settles writes a crash or an in-doubt answer left
unrecorded. Each create is journaled before it is sent and after it returns, and the ID map is
updated in small batches, so a kill loses at most the batch in flight, which the read-back
then finds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from migration_pipeline.errors import ApiError, BudgetExhausted, ConfigurationError, MigrationError
from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.payload import CUSTOM_PREFIX, LINKED_OBJECTS, REF_PREFIX, Payload, build_payload, iter_payloads
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.mapping.transform import REJECT_COLUMNS
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.errors import TrafficBlocked, WriteInDoubt
from migration_pipeline.validation.diff import matches
from migration_pipeline.steps.objects import OBJECTS, MigratedObject
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, request_digest

log = logging.getLogger(__name__)

ID_BATCH = 100


@dataclass
class LoadResult:
    object: str
    staged: int
    already_loaded: int = 0
    linked_by_read_back: int = 0
    created: int = 0
    failed: int = 0
    in_doubt: int = 0
    values_refused: int = 0  # values Pipedrive has no option for (in staged.rejects)
    deferred_links: int = 0  # links to records not in Pipedrive yet (set when those are loaded)
    links_set: int = 0  # records updated with links to records loaded since they were created
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def wrote_nothing(self) -> bool:
        return self.created == 0 and self.failed == 0 and self.in_doubt == 0


async def held_dynamics_ids(client: PipedriveClient, resource: str, dynamics_id_key: str) -> dict[str, str]:
    """Dynamics id -> Pipedrive id for every live record of `resource` that carries one."""
    held: dict[str, str] = {}
    async for record in client.iter_v2(resource, params={"custom_fields": dynamics_id_key}):
        value = (record.get("custom_fields") or {}).get(dynamics_id_key)
        if value and not record.get("is_deleted"):
            held[str(value)] = str(record["id"])
    return held


async def load_object(
    client: PipedriveClient,
    warehouse: Warehouse,
    mappings_dir: Path,
    item: MigratedObject,
    run_id: str,
    concurrency: int = 8,
) -> LoadResult:
    """Create every staged record that Pipedrive does not hold yet."""
    require_confirmed(mappings_dir)
    started = time.monotonic()
    fields = payload_fields(warehouse, item.name)
    if DYNAMICS_ID_FIELD not in fields.codes:
        raise ConfigurationError(
            f"The {DYNAMICS_ID_FIELD!r} field of {item.name} has not been provisioned.",
            hint="Run the provisioning step first (`migrate run` does it).",
        )
    staged = warehouse.read_staged(item.name)
    result = LoadResult(item.name, staged=len(staged))
    known = warehouse.idmap(item.name)
    todo = staged[~staged["source_id"].isin(known)]
    result.already_loaded = len(staged) - len(todo)
    if todo.empty:
        result.links_set = await settle_links(client, warehouse, run_id)
        result.seconds = time.monotonic() - started
        return result

    held = await held_dynamics_ids(client, item.resource, fields.codes[DYNAMICS_ID_FIELD])
    linked = {source_id: held[source_id] for source_id in todo["source_id"] if source_id in held}
    warehouse.record_ids(item.name, linked, run_id)
    result.linked_by_read_back = len(linked)
    todo = todo[~todo["source_id"].isin(linked)]

    created_ids: dict[str, str] = {}
    rejects: list[dict[str, Any]] = []
    refused_records: list[str] = []
    in_doubt: list[str] = []
    stopped: list[MigrationError] = []
    payloads: Iterator[tuple[str, Payload]] = iter_payloads(todo, fields)

    with Journal(warehouse.journal_dir, run_id) as journal:

        async def worker() -> None:
            for source_id, payload in payloads:
                if stopped:  # the budget is spent or the account blocked: hand out nothing more
                    return
                body = payload.body
                rejects.extend(dict(object=item.name, source_id=source_id, field=name, value=value, reason=reason, rule="option")
                               for name, value, reason in payload.refused)
                result.values_refused += len(payload.refused)
                result.deferred_links += len(payload.deferred)
                intent = journal.intent("create", item.name, source_id, request_digest("POST", item.resource, body))
                try:
                    record = await client.create(item.resource, body)
                except WriteInDoubt as error:
                    journal.outcome(intent, "in_doubt", detail=error.message)
                    in_doubt.append(source_id)
                    continue
                except (BudgetExhausted, TrafficBlocked) as error:
                    # Refused before anything was applied: recorded, left for the next run, and no more sent.
                    journal.outcome(intent, "not_applied", detail=error.message)
                    stopped.append(error)
                    return
                except ApiError as error:
                    journal.outcome(intent, "failed", detail=error.message)
                    refused_records.append(source_id)
                    rejects.append(dict(object=item.name, source_id=source_id, field=None, value=None,
                                        reason=f"Pipedrive refused the record: {error.message}", rule="load"))
                    continue
                journal.outcome(intent, "ok", pipedrive_id=record["id"])
                created_ids[source_id] = str(record["id"])
                result.created += 1
                if len(created_ids) >= ID_BATCH:
                    batch = dict(created_ids)
                    created_ids.clear()
                    warehouse.record_ids(item.name, batch, run_id)
                    log.info("load %s: %d of %d created", item.name, result.created, len(todo))

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            warehouse.record_ids(item.name, created_ids, run_id)

    if stopped:  # every worker has finished and its outcome is journaled; what was created is in the ID map
        warehouse.import_journal()
        raise stopped[0]
    if in_doubt:
        # Settle in-doubt writes now: the ones Pipedrive did apply are linked, the rest wait for the next run.
        held = await held_dynamics_ids(client, item.resource, fields.codes[DYNAMICS_ID_FIELD])
        settled = {source_id: held[source_id] for source_id in in_doubt if source_id in held}
        warehouse.record_ids(item.name, settled, run_id)
        result.created += len(settled)
        result.in_doubt = len(in_doubt) - len(settled)
    result.failed = len(refused_records)
    result.failures = [row["reason"] for row in rejects[:5]]
    if rejects:
        warehouse.replace_rows(
            "staged.rejects",
            pd.DataFrame(rejects, columns=REJECT_COLUMNS),
            where="object = ? AND rule IN ('load', 'option') AND source_id IN (SELECT unnest(?))",
            params=[item.name, [row["source_id"] for row in rejects]],
        )
    result.links_set = await settle_links(client, warehouse, run_id)
    warehouse.import_journal()
    result.seconds = time.monotonic() - started
    return result


async def settle_links(client: PipedriveClient, warehouse: Warehouse, run_id: str) -> int:
    """Set the links a create had to leave out because their record was not in Pipedrive yet, now that it is.

    Crash-safe by construction: what is missing is read back (one list read per object with
    links), never remembered, so a run killed at any point settles the rest next time. Each
    update is journaled with the before-image of the fields it sets.
    """
    updated = 0
    for obj in OBJECTS:
        idmap = warehouse.idmap(obj.name)
        staged_path = warehouse.staged_path(obj.name)
        if not idmap or not staged_path.exists():
            continue
        fields = payload_fields(warehouse, obj.name)
        staged = warehouse.read_staged(obj.name)
        links = [c for c in staged.columns if c.startswith(REF_PREFIX)
                 or (c.startswith(CUSTOM_PREFIX) and fields.types.get(c.removeprefix(CUSTOM_PREFIX)) in LINKED_OBJECTS)]
        if not links:
            continue
        wanted = {}
        for row in staged.loc[staged["source_id"].isin(idmap), ["source_id", *links]].to_dict("records"):
            body = build_payload(row, fields).body
            if body:
                wanted[str(row["source_id"])] = body
        if not wanted:
            continue
        held = {str(record["id"]): record async for record in client.iter_v2(obj.resource)}
        with Journal(warehouse.journal_dir, run_id) as journal:
            for source_id, body in wanted.items():
                record = held.get(idmap[source_id])
                if record is None or all(_holds(record, key, value) for key, value in body.items()):
                    continue
                before = {key: record.get(key) for key in body}
                intent = journal.intent("update", obj.name, source_id, request_digest("PATCH", obj.resource, body), before_image=before)
                try:
                    await client.update(obj.resource, idmap[source_id], body)
                except ApiError as error:
                    journal.outcome(intent, "failed", pipedrive_id=idmap[source_id], detail=error.message)
                    continue
                journal.outcome(intent, "ok", pipedrive_id=idmap[source_id])
                updated += 1
    if updated:
        log.info("links: %d records updated with links to records loaded since", updated)
    return updated


def _holds(record: dict[str, Any], key: str, value: Any) -> bool:
    return matches(value, record.get(key))
