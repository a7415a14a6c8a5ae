"""Where each staged table goes in Pipedrive, and how a record sent there is found again.

The loader (`steps/load.py`) is one loop for every table; what differs per table is here:
how a body is sent (one v2 create, a v1 create, a bulk call of up to 100 deal products, a
multipart upload) and how a record is recognised when read back. Objects that carry a
"Dynamics ID" custom field are recognised by it. Objects with no custom fields in Pipedrive
(notes, activities, deal products, files, organization relationships) are recognised by a
fingerprint of what was sent: the parent's id plus the values that make the record itself.
Two staged records with the same fingerprint (two identical notes on one deal) claim two
records with that fingerprint, so none is created twice and none is left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from migration_pipeline.mapping.payload import PayloadFields
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.pipedrive.client import PipedriveClient

Body = dict[str, Any]
Record = dict[str, Any]
# A bulk deal-product call costs 25 tokens, a single create 5 (specs' prices): bulk pays from 5 lines.
BULK_WORTH_IT = 5
# Fetches one file's bytes from Dynamics, by the annotation's id.
FetchBody = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True)
class Target:
    """One staged table and the Pipedrive records it becomes.

    `name` names the staged table and the ID map (`idmap.<name>`); `fields_object` whose
    provisioned custom fields its rows use; `resource` the API resource it is written to.
    `identity` and `record_identity` give the same value for a body and for the record it made.
    `late` names the body keys set by an update after the create (a lead is created, then
    archived). `batch` is how many rows one request carries (the deal-product bulk call: 100).
    """

    name: str
    resource: str
    fields_object: str
    identity: Callable[[Body, PayloadFields], Hashable | None]
    record_identity: Callable[[Record, PayloadFields], Hashable | None]
    read_back: Callable[[PipedriveClient, PayloadFields, Sequence[Body]], AsyncIterator[Record]]
    send: Callable[[PipedriveClient, str, Sequence[tuple[str, Body]]], Awaitable[list[Record]]]
    needs_dynamics_id: bool = False
    batch: int = 1
    late: tuple[str, ...] = ()
    shape: Callable[[Body, PayloadFields], Body] | None = None
    record_id: Callable[[Record], str] = lambda record: str(record["id"])

    def batches(self, rows: Iterable[tuple[str, Body]]) -> Iterable[list[tuple[str, Body]]]:
        """The requests to send: one row each, or the rows of one deal together for a bulk call."""
        if self.batch == 1:
            for row in rows:
                yield [row]
            return
        groups: dict[Any, list[tuple[str, Body]]] = {}
        for source_id, body in rows:
            group = groups.setdefault(body.get("deal_id"), [])
            group.append((source_id, body))
            if len(group) == self.batch:
                yield groups.pop(body.get("deal_id"))
        for group in groups.values():
            if len(group) >= BULK_WORTH_IT:
                yield group
            else:  # a bulk call costs what BULK_WORTH_IT single creates cost: fewer lines go one by one
                yield from ([row] for row in group)


# -- recognising records ---------------------------------------------------------------------


def _dynamics_id(body: Body, fields: PayloadFields) -> Hashable | None:
    code = fields.codes.get(DYNAMICS_ID_FIELD)
    value = (body.get("custom_fields") or {}).get(code) if code else None
    return None if value is None else str(value)


def _dynamics_id_top_level(body: Body, fields: PayloadFields) -> Hashable | None:
    code = fields.codes.get(DYNAMICS_ID_FIELD)
    value = body.get(code) if code else None
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, dict):  # v1 renders a linked record as {"value": id, "name": ...}
        value = value.get("value")
    return None if value is None else int(value)


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _number(value: Any) -> float:
    return round(float(value or 0), 4)


def _note_identity(record: Body, fields: PayloadFields) -> Hashable:
    return (_text(record.get("content")), *(_int(record.get(key)) for key in ("org_id", "person_id", "deal_id")),
            record.get("lead_id"))


def _activity_identity(record: Body, fields: PayloadFields) -> Hashable:
    return (_text(record.get("subject")), record.get("type"), record.get("due_date"), _int(record.get("deal_id")),
            _int(record.get("org_id")), record.get("lead_id"))


def _deal_product_identity(record: Body, fields: PayloadFields) -> Hashable:
    return (_int(record.get("deal_id")), _int(record.get("product_id")), _number(record.get("quantity")),
            _number(record.get("item_price")), _text(record.get("comments")))


def _relationship_identity(record: Body, fields: PayloadFields) -> Hashable:
    return (record.get("type"), _int(record.get("rel_owner_org_id")), _int(record.get("rel_linked_org_id")))


FILE_PARENTS = ("deal_id", "person_id", "org_id", "lead_id")


def file_parent(record: Body) -> tuple[str, Any] | None:
    for key in FILE_PARENTS:
        if record.get(key) not in (None, 0):
            return key, record[key] if key == "lead_id" else _int(record[key])
    return None


def _file_identity(body: Body, fields: PayloadFields) -> Hashable:
    return (body.get("file_name"), file_parent(body))


def _held_file_identity(record: Record, fields: PayloadFields) -> Hashable:
    """Pipedrive keeps the uploaded name in `name` (`file_name` may be its own storage name)."""
    return (record.get("name") or record.get("file_name"), file_parent(record))


# -- reading back ----------------------------------------------------------------------------


def list_reader(resource: str, params: dict[str, Any] | None = None) -> Callable[[PipedriveClient, PayloadFields, Sequence[Body]], AsyncIterator[Record]]:
    async def read(client: PipedriveClient, fields: PayloadFields, bodies: Sequence[Body]) -> AsyncIterator[Record]:
        async for record in client.iterate(resource, params):
            if not record.get("is_deleted") and record.get("active_flag") is not False:
                yield record

    return read


# Lists that leave records out: archived deals are only in `/deals/archived`.
EXTRA_LISTS = {"deals": ("deals/archived",)}


def _v2_with_dynamics_id(resource: str) -> Callable[[PipedriveClient, PayloadFields, Sequence[Body]], AsyncIterator[Record]]:
    async def read(client: PipedriveClient, fields: PayloadFields, bodies: Sequence[Body]) -> AsyncIterator[Record]:
        params = {"custom_fields": fields.codes[DYNAMICS_ID_FIELD]} if DYNAMICS_ID_FIELD in fields.codes else None
        for listing in (resource, *EXTRA_LISTS.get(resource, ())):
            async for record in client.iter_v2(listing, params):
                if not record.get("is_deleted"):
                    yield record

    return read


async def read_leads(client: PipedriveClient, fields: PayloadFields, bodies: Sequence[Body]) -> AsyncIterator[Record]:
    for resource in ("leads", "leads/archived"):
        async for record in client.iter_v1(resource):
            yield record


async def read_deal_products(client: PipedriveClient, fields: PayloadFields, bodies: Sequence[Body]) -> AsyncIterator[Record]:
    """The bulk read (`GET /deals/products`, 100 deals a call) of the deals the bodies go to."""
    deal_ids = sorted({body["deal_id"] for body in bodies if body.get("deal_id")} | set(fields.links.get("deals", {}).values()), key=int)
    for start in range(0, len(deal_ids), 100):
        async for record in client.iter_v2("deals/products", {"deal_ids": ",".join(map(str, deal_ids[start:start + 100]))}):
            yield record


async def read_relationships(client: PipedriveClient, fields: PayloadFields, bodies: Sequence[Body]) -> AsyncIterator[Record]:
    """Relationships are listed per organization: those of every owner organization the bodies name."""
    seen: set[Any] = set()
    for owner in sorted({body["rel_owner_org_id"] for body in bodies if body.get("rel_owner_org_id")}):
        for record in await client.request("GET", "organizationRelationships", version="v1", params={"org_id": owner}) or []:
            if record["id"] not in seen and record.get("active_flag") not in ("false", False):
                seen.add(record["id"])
                yield record


# -- sending ---------------------------------------------------------------------------------


async def _create_one(client: PipedriveClient, resource: str, rows: Sequence[tuple[str, Body]]) -> list[Record]:
    ((_, body),) = rows
    return [await client.create(resource, body)]


async def _create_lead(client: PipedriveClient, resource: str, rows: Sequence[tuple[str, Body]]) -> list[Record]:
    ((_, body),) = rows
    return [await client.create("leads", {key: value for key, value in body.items() if key != "is_archived"})]


async def _create_deal_products(client: PipedriveClient, resource: str, rows: Sequence[tuple[str, Body]]) -> list[Record]:
    deal_id = rows[0][1]["deal_id"]
    lines = [{key: value for key, value in body.items() if key != "deal_id"} for _, body in rows]
    if len(lines) == 1:
        return [await client.create(f"deals/{deal_id}/products", lines[0])]
    return list(await client.create(f"deals/{deal_id}/products/bulk", {"data": lines}))


# -- shaping bodies --------------------------------------------------------------------------


def _lead_shape(body: Body, fields: PayloadFields) -> Body:
    """Leads take deal custom fields as top-level keys (v1), not under `custom_fields`."""
    shaped = {key: value for key, value in body.items() if key != "custom_fields"}
    shaped.update(body.get("custom_fields") or {})
    return shaped


def _activity_shape(body: Body, fields: PayloadFields) -> Body:
    """Participants go as `[{person_id, primary}]`, the first one primary."""
    people = body.pop("participants", None)
    if people:
        body["participants"] = [{"person_id": person, "primary": index == 0} for index, person in enumerate(people)]
    return body


def v2_object(name: str, resource: str | None = None) -> Target:
    """An object with a "Dynamics ID" custom field, created through v2 (organizations, persons, products, deals)."""
    resource = resource or name
    return Target(name=name, resource=resource, fields_object=name, identity=_dynamics_id, record_identity=_dynamics_id,
                  read_back=_v2_with_dynamics_id(resource), send=_create_one, needs_dynamics_id=True)


LEADS = Target(name="leads", resource="leads", fields_object="leads", identity=_dynamics_id_top_level,
               record_identity=_dynamics_id_top_level, read_back=read_leads, send=_create_lead, needs_dynamics_id=True,
               late=("is_archived",), shape=_lead_shape)
RELATIONSHIPS = Target(name="organizations_relationships", resource="organizationRelationships", fields_object="organizations",
                       identity=_relationship_identity, record_identity=_relationship_identity,
                       read_back=read_relationships, send=_create_one)
DEAL_PRODUCTS = Target(name="deal_products", resource="deals/products", fields_object="deal_products",
                       identity=_deal_product_identity, record_identity=_deal_product_identity,
                       read_back=read_deal_products, send=_create_deal_products, batch=100)
ACTIVITIES = Target(name="activities", resource="activities", fields_object="activities", identity=_activity_identity,
                    record_identity=_activity_identity, read_back=list_reader("activities"), send=_create_one, shape=_activity_shape)
NOTES = Target(name="notes", resource="notes", fields_object="notes", identity=_note_identity, record_identity=_note_identity,
               read_back=list_reader("notes"), send=_create_one)


def files_target(fetch_body: FetchBody) -> Target:
    """Files: each body fetched from Dynamics when its turn comes, then uploaded onto its parent."""

    async def upload(client: PipedriveClient, resource: str, rows: Sequence[tuple[str, Body]]) -> list[Record]:
        ((source_id, body),) = rows
        parent = file_parent(body)
        if parent is None:
            raise ValueError(f"file {source_id} has no parent in Pipedrive")
        content = await fetch_body(source_id)
        return [await client.upload_file(content, body["file_name"], {parent[0]: parent[1]})]

    return Target(name="files", resource="files", fields_object="files", identity=_file_identity,
                  record_identity=_held_file_identity, read_back=list_reader("files"), send=upload)


# The targets without a "Dynamics ID" or with a shape of their own, by load step.
TARGETS = {target.name: target for target in (LEADS, RELATIONSHIPS, DEAL_PRODUCTS, ACTIVITIES, NOTES)}
