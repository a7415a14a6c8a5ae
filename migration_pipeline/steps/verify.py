"""Verify: read back what Pipedrive holds of every loaded object and diff it field by field.

`verify_object(client, warehouse, name)` serves every load step (`VERIFIED`, the names of
`defs/pipedrive/assets.py` LOAD_STEPS). What is compared is what the loader sent: each staged
row of the object's ID map, built into its request body exactly as the loader builds it
(`build_payload`, then the target's own shaping in `steps/targets.py`), against the record that
body made, read back the way the loader reads it back (`steps/targets.py` readers):

| object | read back (tokens) |
|---|---|
| organizations, persons, products, activities | the v2 list, 500 a page (10 a page) |
| deals | the v2 lists of open and archived deals (10 and 20 a page) |
| deal_products | the bulk read `deals/products?deal_ids=`, 100 deals a call (10 a call) |
| leads | v1 `leads` and `leads/archived`, 500 a page (20 and 40 a page) |
| notes | v1 `notes`, 500 a page (20 a page) |
| files | v1 `files`, 100 a page (20 a page); name, size and parent of every file |
| organizations_relationships | by id (2 each); an organization's list (20) where it holds 10 or more of them |
| deal_archive | the v2 list of archived deals (20 a page): every closed deal the rules chose is archived |

Scope: the records in the object's ID map, i.e. the ones loaded. A staged record not loaded yet
is not a difference (a sample migration loads a slice; `steps/reconcile.py` counts what is left to
load). Records linked to ones that existed in Pipedrive before the migration (`idmap.existing`)
never received the Dynamics values, so they are checked for presence and counted as
"(linked existing)", not diffed. Records carrying a Dynamics ID that no ID map row points at are
reported as "(duplicate)" (organizations, persons, products, deals, leads).

File contents: a checksum needs a download on each side (a Pipedrive download costs 20 tokens,
as much as a list page of 100 files, and Dynamics serves one body at a time), so every file is
compared on name, size and parent from the list, and the SHA-256 of the content is compared on a
deterministic sample of `FileBodies.sample` files (default 3: those whose source id hashes
lowest), only when the caller hands `FileBodies` in (both downloads).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from migration_pipeline.errors import ApiError
from migration_pipeline.mapping.payload import PayloadFields, build_payload
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.progress import Progress
from migration_pipeline.steps.existing import existing_ids
from migration_pipeline.steps.load import ARCHIVE_CANDIDATES
from migration_pipeline.steps.objects import MigratedObject
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.targets import (
    ACTIVITIES,
    EXTRA_LISTS,
    LEADS,
    Body,
    Record,
    file_parent,
    list_reader,
    read_deal_products,
    read_leads,
    read_relationships,
)
from migration_pipeline.validation.diff import DiffResult, diff_object
from migration_pipeline.validation.normalize import STANDARD, Norm, field_norms
from migration_pipeline.warehouse.catalog import Warehouse

log = logging.getLogger(__name__)

ARCHIVE = "deal_archive"
# A relationship costs 2 tokens by id; an organization's list 20 and brings all of that organization's at once.
LIST_PAYS = 10
CONCURRENT_GETS = 8
CHECKSUM_SAMPLE = 3

# Reads the records of one object: (client, its payload fields, Pipedrive id -> expected body of the loaded records).
Reader = Callable[[PipedriveClient, PayloadFields, Mapping[str, Body]], AsyncIterator[Record]]
FetchBytes = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True)
class FileBodies:
    """Both ends of a file's content, for the checksum sample: `source` by annotation id (Dynamics),
    `held` by Pipedrive file id (`GET /v1/files/{id}/download`, 20 tokens)."""

    source: FetchBytes
    held: FetchBytes
    sample: int = CHECKSUM_SAMPLE


@dataclass(frozen=True)
class Verified:
    """How one loaded object is read back, and how a body and a record are put in the same shape.

    `shape` is the loader's own body shaping (`steps/targets.py`); `held` turns a record as read
    into the body's shape (a v1 lead's custom fields into their v2 form); `view` picks what is
    compared of a body when that is not the body itself (a file: name, size, parent);
    `dynamics_id` finds a record's "Dynamics ID", for duplicates.
    """

    name: str
    fields_object: str
    read: Reader
    shape: Callable[[Body, PayloadFields], Body] | None = None
    held: Callable[[Record, PayloadFields], Record] | None = None
    view: Callable[[Body], Body] | None = None
    dynamics_id: Callable[[Record, PayloadFields], str | None] | None = None


# -- reading back -------------------------------------------------------------------------------


def _lists(resource: str) -> Reader:
    """Every live record of a list (and of the lists that hold the rest of it: archived deals)."""

    async def read(client: PipedriveClient, fields: PayloadFields, loaded: Mapping[str, Body]) -> AsyncIterator[Record]:
        for listing in (resource, *EXTRA_LISTS.get(resource, ())):
            async for record in list_reader(listing)(client, fields, ()):
                yield record

    return read


async def _read_leads_back(client: PipedriveClient, fields: PayloadFields, loaded: Mapping[str, Body]) -> AsyncIterator[Record]:
    async for record in read_leads(client, fields, ()):
        yield record


async def _read_deal_products_back(client: PipedriveClient, fields: PayloadFields, loaded: Mapping[str, Body]) -> AsyncIterator[Record]:
    """The bulk read, for the deals that hold loaded lines only (the loader's reader adds every loaded deal)."""
    async for record in read_deal_products(client, PayloadFields(), list(loaded.values())):
        yield record


def plan_relationship_reads(loaded: Mapping[str, Body], list_pays: int = LIST_PAYS) -> tuple[list[int], list[str]]:
    """Which organizations' lists to read, and which relationships to read by id, to see every loaded one.

    Relationships have no list of their own, only one per organization (20 tokens, all of that
    organization's relationships), and a GET by id costs 2. So an organization's list is read
    where it brings `list_pays` or more of the relationships not covered yet (a holding's
    subsidiaries), the largest first; every other relationship is read by its id.
    """
    remaining = set(loaded)
    by_org: dict[int, set[str]] = {}
    for pipedrive_id, body in loaded.items():
        for key in ("rel_owner_org_id", "rel_linked_org_id"):
            if body.get(key) is not None:
                by_org.setdefault(int(body[key]), set()).add(pipedrive_id)
    listed = []
    while by_org:
        org, ids = max(by_org.items(), key=lambda item: (len(item[1] & remaining), -item[0]))
        if len(ids & remaining) < list_pays:
            break
        listed.append(org)
        remaining -= ids
        del by_org[org]
    return listed, sorted(remaining, key=lambda pipedrive_id: (len(pipedrive_id), pipedrive_id))


async def _read_relationships_back(client: PipedriveClient, fields: PayloadFields, loaded: Mapping[str, Body]) -> AsyncIterator[Record]:
    """The loaded relationships, by the cheapest reads (`plan_relationship_reads`). Read by id, a relationship
    someone re-parented in Pipedrive is still found, and its changed link reported as a difference, not as
    a missing record; one that an organization's list should have brought and did not is read by id too."""
    listed, _ = plan_relationship_reads(loaded)
    seen = set()
    async for record in read_relationships(client, fields, [{"rel_owner_org_id": org} for org in listed]):
        seen.add(str(record["id"]))
        yield record
    slots = asyncio.Semaphore(CONCURRENT_GETS)

    async def get(pipedrive_id: str) -> Record | None:
        async with slots:
            try:
                return await client.get("organizationRelationships", pipedrive_id)
            except ApiError as error:
                if error.status_code == 404:
                    return None
                raise

    by_id = sorted(set(loaded) - seen, key=lambda pipedrive_id: (len(pipedrive_id), pipedrive_id))
    for record in await asyncio.gather(*(get(pipedrive_id) for pipedrive_id in by_id)):
        if record and record.get("active_flag") not in ("false", False):
            yield record


# -- shapes -------------------------------------------------------------------------------------


def _lead_held(record: Record, fields: PayloadFields) -> Record:
    """v1 renders a lead's monetary and address custom fields flat (`<key>`, `<key>_currency`, `<key>_<part>`):
    put them back in the v2 form the loader sent."""
    held = dict(record)
    for name, code in fields.codes.items():
        kind = fields.types.get(name)
        if code not in held or held[code] is None:
            continue
        if kind == "monetary":
            held[code] = {"value": held[code], "currency": held.get(f"{code}_currency")}
        elif kind == "address":
            prefix = f"{code}_"
            held[code] = {"value": held[code], **{key.removeprefix(prefix): value for key, value in record.items() if key.startswith(prefix)}}
    return held


def _parent_text(record: Mapping[str, Any]) -> str | None:
    parent = file_parent(record)
    return None if parent is None else f"{parent[0].removesuffix('_id')} {parent[1]}"


def _file_view(body: Body) -> Body:
    """A file is compared on what its upload carried: the name, the size of the bytes, the parent."""
    return {"file_name": body.get("file_name"), "size": body.get("size"), "parent": _parent_text(body)} if body else {}


def _file_held(record: Record, fields: PayloadFields) -> Record:
    """Pipedrive keeps the uploaded name in `name` (`file_name` may be its own storage name)."""
    return {"id": record["id"], "file_name": record.get("name") or record.get("file_name"), "size": record.get("file_size"),
            "parent": _parent_text(record), "is_deleted": record.get("is_deleted")}


def _custom_dynamics_id(record: Record, fields: PayloadFields) -> str | None:
    code = fields.codes.get(DYNAMICS_ID_FIELD)
    value = (record.get("custom_fields") or {}).get(code) if code else None
    return None if value in (None, "") else str(value)


def _top_level_dynamics_id(record: Record, fields: PayloadFields) -> str | None:
    code = fields.codes.get(DYNAMICS_ID_FIELD)
    value = record.get(code) if code else None
    return None if value in (None, "") else str(value)


def _v2(name: str) -> Verified:
    return Verified(name, name, _lists(name), dynamics_id=_custom_dynamics_id)


VERIFIERS: dict[str, Verified] = {
    item.name: item
    for item in (
        _v2("organizations"),
        Verified("organizations_relationships", "organizations", _read_relationships_back),
        _v2("persons"),
        _v2("products"),
        _v2("deals"),
        Verified("deal_products", "deal_products", _read_deal_products_back),
        Verified("leads", "leads", _read_leads_back, shape=LEADS.shape, held=_lead_held, dynamics_id=_top_level_dynamics_id),
        Verified("activities", "activities", _lists("activities"), shape=ACTIVITIES.shape),
        Verified("notes", "notes", _lists("notes")),
        Verified("files", "files", _lists("files"), held=_file_held, view=_file_view),
    )
}
# Every load step, in load order: what `verify_object` accepts.
VERIFIED: tuple[str, ...] = (*VERIFIERS, ARCHIVE)


# -- the diff -----------------------------------------------------------------------------------


async def verify_object(client: PipedriveClient, warehouse: Warehouse, name: str | MigratedObject,
                        files: FileBodies | None = None) -> DiffResult:
    """Diff every loaded record of one load step (`VERIFIED`) against Pipedrive; the results replace this
    object's rows in `validation.field_diff` and `validation.summary`.

    `name` may still be a `MigratedObject` (its name is used). `files` enables the content checksum
    of a sample of files (see the module docstring).
    """
    name = name.name if isinstance(name, MigratedObject) else name
    if name == ARCHIVE:
        result = await _verify_archive(client, warehouse)
    elif name in VERIFIERS:
        result = await _verify(client, warehouse, VERIFIERS[name], files)
    else:
        raise KeyError(f"unknown object {name!r}; expected one of {', '.join(VERIFIED)}")
    warehouse.replace_rows("validation.field_diff", result.differences, where="object = ?", params=[name])
    summary = result.summary.assign(checked_at=datetime.now(UTC))
    warehouse.replace_rows("validation.summary", summary, where="object = ?", params=[name])
    return result


async def _verify(client: PipedriveClient, warehouse: Warehouse, spec: Verified, files: FileBodies | None) -> DiffResult:
    fields = payload_fields(warehouse, spec.fields_object)
    idmap = warehouse.idmap(spec.name)
    bodies = expected_bodies(warehouse, spec, fields, idmap)
    loaded = {idmap[source_id]: body for source_id, body in bodies.items()}
    records: dict[str, Record] = {}
    # The total is what was loaded: the lists may also hold records the migration did not make.
    with Progress(f"verify {spec.name}", total=len(loaded), unit="records", tokens=lambda: client.usage.tokens, logger=log) as progress:
        async for record in spec.read(client, fields, loaded):
            records[str(record["id"])] = spec.held(record, fields) if spec.held else record
            progress.advance()
    views = {source_id: spec.view(body) if spec.view else body for source_id, body in bodies.items()}
    if files is not None and spec.name == "files":
        await _checksums(files, idmap, views, records)
    names = {code: field for field, code in fields.codes.items()}
    return diff_object(
        spec.name,
        ((source_id, pipedrive_id, views.get(source_id, {})) for source_id, pipedrive_id in sorted(idmap.items())),
        records,
        names,
        linked=existing_ids(warehouse, spec.name),
        norms=norms_of(spec, fields),
        duplicates=_duplicates(spec, fields, records, idmap),
    )


def norms_of(spec: Verified, fields: PayloadFields) -> dict[str, Norm]:
    """Each body key's normaliser for one object (`validation/normalize.py`)."""
    # Shown by name like options: a deal's stage as "<pipeline>/<stage>", a lead's labels (leads only: other labels differ).
    extra_options = {"stage_id": fields.links.get("stages", {})}
    if spec.name == "leads":
        extra_options["label_ids"] = fields.links.get("lead_labels", {})
    return field_norms(fields, extra_options)


def expected_bodies(warehouse: Warehouse, spec: Verified, fields: PayloadFields, idmap: Mapping[str, str]) -> dict[str, Body]:
    """Source id -> the body the loader sends for it (a deal with products: their sum as its value), for loaded rows only."""
    if not idmap or not warehouse.staged_path(spec.name).exists():
        return {}
    staged = warehouse.read_staged(spec.name)
    staged = staged[staged["source_id"].astype(str).isin(idmap)]
    revalued = deal_values_from_products(warehouse) if spec.name == "deals" else {}
    bodies = {}
    for row in staged.to_dict("records"):
        source_id = str(row["source_id"])
        body = build_payload(row, fields).body
        body = spec.shape(body, fields) if spec.shape else body
        bodies[source_id] = _revalue(body, revalued.get(source_id))
    return bodies


def _duplicates(spec: Verified, fields: PayloadFields, records: Mapping[str, Record], idmap: Mapping[str, str]) -> list[tuple[str, str, str | None]]:
    """Records carrying a Dynamics ID whose ID-map row is missing or points at another record."""
    if spec.dynamics_id is None:
        return []
    found = []
    for record_id, record in sorted(records.items()):
        dynamics_id = spec.dynamics_id(record, fields)
        if dynamics_id is not None and idmap.get(dynamics_id) != record_id:
            found.append((dynamics_id, record_id, idmap.get(dynamics_id)))
    return found


def _checksum_sample(source_ids: list[str], size: int) -> list[str]:
    """A deterministic spread of files: those whose source id hashes lowest (not the first loaded, not one parent's)."""
    return sorted(source_ids, key=lambda source_id: hashlib.sha256(source_id.encode()).hexdigest())[:size]


async def _checksums(files: FileBodies, idmap: Mapping[str, str], views: dict[str, Body], records: dict[str, Record]) -> None:
    """Add a `checksum` (SHA-256 of the bytes) to both sides of the sampled files that Pipedrive holds."""
    present = [source_id for source_id in views if idmap[source_id] in records]
    for source_id in _checksum_sample(present, files.sample):
        pipedrive_id = idmap[source_id]
        source, held = await asyncio.gather(files.source(source_id), files.held(pipedrive_id))
        views[source_id] = {**views[source_id], "checksum": hashlib.sha256(source).hexdigest()}
        records[pipedrive_id] = {**records[pipedrive_id], "checksum": hashlib.sha256(held).hexdigest()}


async def _verify_archive(client: PipedriveClient, warehouse: Warehouse) -> DiffResult:
    """Every closed deal the rules chose to archive, loaded, is in the archived list: one `is_archived` per deal.

    The deals themselves (and their presence) are the `deals` diff's; this one counts no `(record)`.
    """
    idmap = warehouse.idmap("deals")
    candidates = warehouse.read_staged(ARCHIVE_CANDIDATES) if warehouse.staged_path(ARCHIVE_CANDIDATES).exists() else pd.DataFrame(columns=["source_id"])
    wanted = {str(source_id): idmap[str(source_id)] for source_id in candidates["source_id"] if str(source_id) in idmap}
    archived = {str(record["id"]) async for record in client.iter_v2("deals/archived")} if wanted else set()
    return diff_object(
        ARCHIVE,
        ((source_id, pipedrive_id, {"is_archived": True}) for source_id, pipedrive_id in sorted(wanted.items())),
        {pipedrive_id: {"is_archived": pipedrive_id in archived} for pipedrive_id in wanted.values()},
        {},
        norms=STANDARD,
        records=False,
    )


def deal_values_from_products(warehouse: Warehouse) -> dict[str, float]:
    """Deal source id -> its value once its products are attached: Pipedrive sets the value of a deal with products
    to the sum of their lines (price x quantity, less the discount, plus an exclusive tax), whatever was sent."""
    if not warehouse.staged_path("deal_products").exists() or not warehouse.idmap("deal_products"):
        return {}
    lines = warehouse.read_staged("deal_products")
    lines = lines[lines["source_id"].isin(warehouse.idmap("deal_products"))]
    return {str(deal): round(sum(round(line_sum(line), 2) for line in group.to_dict("records")), 2)
            for deal, group in lines.groupby("ref:deal_id:deals")}


def line_sum(line: dict[str, Any]) -> float:
    gross = float(line.get("item_price") or 0) * float(line.get("quantity") or 0)
    discount = float(line.get("discount") or 0)
    net = gross - (gross * discount / 100 if line.get("discount_type") == "percentage" else discount)
    return net * (1 + float(line.get("tax") or 0) / 100) if line.get("tax_method") == "exclusive" else net


def _revalue(body: dict[str, Any], value: float | None) -> dict[str, Any]:
    return body if value is None else {**body, "value": value}
