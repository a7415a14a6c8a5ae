"""v1-only resources: leads, lead labels and sources, lead fields, notes, files, users,
activity types, currencies and organization relationships."""

from __future__ import annotations

import copy
import uuid
from typing import Any
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive import fields
from migration_pipeline.sandbox.pipedrive.responses import ApiError, bad_request, not_found
from migration_pipeline.sandbox.pipedrive.routing import (
    Ctx,
    fetch_live,
    invalid,
    offset_page,
    require_live,
    require_owner,
    require_v1_time,
    route,
)
from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed
from migration_pipeline.sandbox.pipedrive.simulator import LEAD_SOURCES, Simulator

MAX_NOTE_CHARS = 100_000
MAX_FILES_PAGE = 100


def _uuid(sim: Simulator) -> str:
    return str(uuid.UUID(int=sim.rng.getrandbits(128), version=4))


# -- leads -----------------------------------------------------------------------------------
def _render_lead(sim: Simulator, lead: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in lead.items() if k not in ("custom_fields", "is_deleted")}
    out.update(fields.to_v1(sim.custom_fields("deal"), lead.get("custom_fields", {})))
    return out


def _lead_page(ctx: Ctx, archived: bool) -> Response:
    rows = [lead for lead in ctx.sim.store.rows("leads") if bool(lead["is_archived"]) == archived]
    for key in ("owner_id", "person_id", "organization_id"):
        if key in ctx.query:
            rows = [lead for lead in rows if lead.get(key) == ctx.query[key]]
    rows.sort(key=lambda lead: (lead["add_time"], lead["id"]))
    page, pagination = offset_page(rows, ctx.query)
    # The spec puts start/limit/more_items_in_collection directly in additional_data; the
    # core paging docs put them under `pagination`. Both are served.
    additional = {**{k: v for k, v in pagination.items() if k != "next_start"}, "pagination": pagination}
    return ctx.ok([_render_lead(ctx.sim, lead) for lead in page], additional_data=additional)


@route("v1", "GET", "/leads")
async def list_leads(ctx: Ctx) -> Response:
    return _lead_page(ctx, archived=False)


@route("v1", "GET", "/leads/archived")
async def list_archived_leads(ctx: Ctx) -> Response:
    return _lead_page(ctx, archived=True)


def _apply_lead(sim: Simulator, body: dict[str, Any], lead: dict[str, Any]) -> None:
    if "title" in body and (body["title"] is None or not body["title"].strip()):
        raise invalid("title", "Parameter 'title' must not be empty")
    if "owner_id" in body:
        require_owner(sim, body["owner_id"])
    if body.get("person_id") is not None:
        require_live(sim, "persons", body["person_id"], "person_id", "Person")
    if body.get("organization_id") is not None:
        require_live(sim, "organizations", body["organization_id"], "organization_id", "Organization")
    for label in body.get("label_ids") or []:
        require_live(sim, "lead_labels", label, "label_ids", "Lead label")
    if body.get("value") is not None and body["value"]["currency"] not in sim.currencies:
        raise bad_request(f"Currency {body['value']['currency']!r} does not exist (value.currency)")
    if "visible_to" in body and body["visible_to"] not in ("1", "3", "5", "7"):
        raise ApiError(403, f"Visibility {body['visible_to']} is not available on this plan", "ERR_FORBIDDEN")
    definitions = sim.custom_fields("deal")
    try:
        values = fields.from_v1(definitions, body, sim.refs())
    except ValidationFailed as error:
        raise ApiError(400, str(error), "ERR_SCHEMA_VALIDATION_FAILED") from error
    for key, value in body.items():
        if not fields.is_v1_key(definitions, key):
            lead[key] = value
    lead.setdefault("custom_fields", {}).update(values)
    if lead.get("person_id") is None and lead.get("organization_id") is None:
        raise bad_request("A lead must be linked to a person or an organization (person_id or organization_id)")


@route("v1", "POST", "/leads")
async def create_lead(ctx: Ctx) -> Response:
    definitions = ctx.sim.custom_fields("deal")
    body = await ctx.validated(allow_extra=lambda key: fields.is_v1_key(definitions, key))
    with ctx.sim.lock:
        ctx.sim.check_deal_cap("lead")
        stamp = ctx.sim.ts_lead()
        lead: dict[str, Any] = {
            "id": _uuid(ctx.sim), "title": None, "owner_id": ctx.user_id, "creator_id": ctx.user_id, "label_ids": [],
            "person_id": None, "organization_id": None, "source_name": "API", "origin": "API", "origin_id": None,
            "channel": None, "channel_id": None, "source_deal_id": None, "is_archived": False, "was_seen": False,
            "value": None, "expected_close_date": None, "next_activity_id": None, "add_time": stamp,
            "update_time": stamp, "visible_to": "3", "cc_email": f"{ctx.sim.seed.company_domain}@pipedrivemail.com",
            "custom_fields": {}, "is_deleted": False,
        }
        _apply_lead(ctx.sim, body, lead)
        ctx.sim.store.add("leads", lead)
    return ctx.ok(_render_lead(ctx.sim, lead), status=201)


@route("v1", "GET", "/leads/{id}")
async def get_lead(ctx: Ctx) -> Response:
    return ctx.ok(_render_lead(ctx.sim, fetch_live(ctx.sim, "leads", ctx.params["id"], "Lead")))


@route("v1", "PATCH", "/leads/{id}")
async def update_lead(ctx: Ctx) -> Response:
    definitions = ctx.sim.custom_fields("deal")
    body = await ctx.validated(allow_extra=lambda key: fields.is_v1_key(definitions, key))
    with ctx.sim.lock:
        current = fetch_live(ctx.sim, "leads", ctx.params["id"], "Lead")
        if current["is_archived"] and set(body) - {"is_archived"}:
            raise bad_request("Archived leads cannot be edited. Unarchive the lead first.")
        if current["is_archived"] and body.get("is_archived") is False:
            ctx.sim.check_deal_cap("lead")
        lead = copy.deepcopy(current)
        _apply_lead(ctx.sim, body, lead)
        lead["update_time"] = ctx.sim.ts_lead()
        current.clear()
        current.update(lead)
    return ctx.ok(_render_lead(ctx.sim, current))


@route("v1", "DELETE", "/leads/{id}")
async def delete_lead(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        lead = fetch_live(ctx.sim, "leads", ctx.params["id"], "Lead")
        lead["is_deleted"] = True
    return ctx.ok({"id": lead["id"]})


@route("v1", "GET", "/leadLabels")
async def list_lead_labels(ctx: Ctx) -> Response:
    labels = ctx.sim.store.rows("lead_labels")
    return ctx.ok([{k: v for k, v in label.items() if k != "is_deleted"} for label in labels])


@route("v1", "POST", "/leadLabels")
async def create_lead_label(ctx: Ctx) -> Response:
    body = await ctx.validated()
    if not body["name"].strip():
        raise invalid("name", "Parameter 'name' must not be empty")
    stamp = ctx.sim.ts_lead()
    with ctx.sim.lock:
        label = ctx.sim.store.add("lead_labels", {"id": _uuid(ctx.sim), "name": body["name"], "color": body["color"],
                                                  "add_time": stamp, "update_time": stamp})
    return ctx.ok({k: v for k, v in label.items() if k != "is_deleted"})


@route("v1", "DELETE", "/leadLabels/{id}")
async def delete_lead_label(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        label = fetch_live(ctx.sim, "lead_labels", ctx.params["id"], "Lead label")
        label["is_deleted"] = True
    return ctx.ok({"id": label["id"]})


@route("v1", "GET", "/leadSources")
async def list_lead_sources(ctx: Ctx) -> Response:
    return ctx.ok([{"name": name} for name in LEAD_SOURCES])


@route("v1", "GET", "/leadFields")
async def list_lead_fields(ctx: Ctx) -> Response:
    rows = [definition.v1(index) for index, definition in enumerate(ctx.sim.lead_fields())]
    page, pagination = offset_page(rows, ctx.query)
    return ctx.ok(page, additional_data={"pagination": pagination})


# -- notes -----------------------------------------------------------------------------------
NOTE_PARENTS = (("deal_id", "deals", "Deal"), ("person_id", "persons", "Person"),
                ("org_id", "organizations", "Organization"), ("lead_id", "leads", "Lead"))


def _render_note(sim: Simulator, note: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in note.items() if k != "is_deleted"}
    out["active_flag"] = not note["is_deleted"]
    deal = sim.store.get("deals", note.get("deal_id"))
    person = sim.store.get("persons", note.get("person_id"))
    org = sim.store.get("organizations", note.get("org_id"))
    user = sim.users.get(note["user_id"], {})
    out.update(deal={"title": deal["title"]} if deal else None, person={"name": person["name"]} if person else None,
               organization={"name": org["name"]} if org else None,
               user={"email": user.get("email"), "icon_url": user.get("icon_url"), "is_you": True,
                     "name": user.get("name")})
    return out


def _apply_note(ctx: Ctx, body: dict[str, Any], note: dict[str, Any]) -> None:
    if "content" in body:
        if not body["content"].strip():
            raise invalid("content", "Parameter 'content' must not be empty")
        if len(body["content"]) > MAX_NOTE_CHARS:
            raise invalid("content", f"Note content must be at most {MAX_NOTE_CHARS} characters")
    for key, table, what in NOTE_PARENTS:
        if body.get(key) is not None:
            require_live(ctx.sim, table, body[key], key, what)
    if "user_id" in body:
        require_owner(ctx.sim, body["user_id"], "user_id")
    if "add_time" in body:
        require_v1_time(body["add_time"], "add_time")
    note.update(body)
    if not any(note.get(key) is not None for key, _, _ in NOTE_PARENTS) and not note.get("project_id"):
        raise bad_request("A note must be attached to a deal, person, organization, lead or project")
    for key in list(note):
        if key.startswith("pinned_to_") and key.endswith("_flag"):
            note[key] = bool(note[key])


@route("v1", "GET", "/notes")
async def list_notes(ctx: Ctx) -> Response:
    rows = ctx.sim.store.rows("notes")
    for key in ("deal_id", "person_id", "org_id", "lead_id", "user_id"):
        if key in ctx.query:
            rows = [note for note in rows if note.get(key) == ctx.query[key]]
    page, pagination = offset_page(rows, ctx.query)
    return ctx.ok([_render_note(ctx.sim, n) for n in page], additional_data={"pagination": pagination})


@route("v1", "POST", "/notes")
async def create_note(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        stamp = ctx.sim.ts_v1()
        note: dict[str, Any] = {"id": ctx.sim.store.new_id("notes"), "user_id": ctx.user_id, "add_time": stamp,
                                "update_time": stamp, "last_update_user_id": ctx.user_id, "is_deleted": False,
                                "pinned_to_deal_flag": False, "pinned_to_organization_flag": False,
                                "pinned_to_person_flag": False}
        _apply_note(ctx, body, note)
        ctx.sim.store.add("notes", note)
    return ctx.ok(_render_note(ctx.sim, note))


@route("v1", "GET", "/notes/{id}")
async def get_note(ctx: Ctx) -> Response:
    return ctx.ok(_render_note(ctx.sim, fetch_live(ctx.sim, "notes", ctx.int_param(), "Note")))


@route("v1", "PUT", "/notes/{id}")
async def update_note(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        current = fetch_live(ctx.sim, "notes", ctx.int_param(), "Note")
        note = copy.deepcopy(current)
        _apply_note(ctx, body, note)
        note.update(update_time=ctx.sim.ts_v1(), last_update_user_id=ctx.user_id)
        current.clear()
        current.update(note)
    return ctx.ok(_render_note(ctx.sim, current))


@route("v1", "DELETE", "/notes/{id}")
async def delete_note(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        fetch_live(ctx.sim, "notes", ctx.int_param(), "Note")["is_deleted"] = True
    return ctx.ok(True)


# -- files -----------------------------------------------------------------------------------
FILE_PARENTS = (("deal_id", "deals", "Deal", "title"), ("person_id", "persons", "Person", "name"),
                ("org_id", "organizations", "Organization", "name"), ("product_id", "products", "Product", "name"),
                ("activity_id", "activities", "Activity", "subject"), ("lead_id", "leads", "Lead", "title"))


def _render_file(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "is_deleted"}
    out["active_flag"] = not record["is_deleted"]
    return out


@route("v1", "POST", "/files")
async def upload_file(ctx: Ctx) -> Response:
    form = await ctx.request.form(max_files=1, max_fields=20)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("file", "Parameter 'file' is required (multipart/form-data)")
        allowed = {"file", *(key for key, _, _, _ in FILE_PARENTS), "project_id"}
        for key in form:
            if key not in allowed:
                raise invalid(key, f"Parameter '{key}' is not allowed for this request")
        given = [(key, table, what, label) for key, table, what, label in FILE_PARENTS if key in form]
        if len(given) != 1:
            raise bad_request("Exactly one of deal_id, person_id, org_id, product_id, activity_id, lead_id is required")
        key, table, what, label = given[0]
        raw = str(form[key])
        if key != "lead_id" and not raw.isdigit():
            raise invalid(key, "Expected 'number' as value")
        parent = require_live(ctx.sim, table, raw if key == "lead_id" else int(raw), key, what)
        content = await upload.read()
    finally:
        await form.close()
    if len(content) > ctx.sim.plan.max_file_size:
        raise ApiError(413, f"File is too large: {len(content)} bytes; the maximum upload size is "
                            f"{ctx.sim.plan.max_file_size} bytes", "ERR_FILE_TOO_LARGE")
    with ctx.sim.lock:
        stamp = ctx.sim.ts_v1()
        file_id = ctx.sim.store.new_id("files")
        name = upload.filename or "file"
        base = str(ctx.request.base_url).rstrip("/")
        record = {"id": file_id, "user_id": ctx.user_id, key: parent["id"], "add_time": stamp, "update_time": stamp,
                  "file_name": name, "name": name, "file_size": len(content), "file_type": name.rpartition(".")[2],
                  "inline_flag": False, "remote_location": "s3", "remote_id": f"{file_id}",
                  "s3_bucket": "sandbox", "url": f"{base}/v1/files/{file_id}/download",
                  key.replace("_id", "_name"): parent.get(label), "is_deleted": False}
        ctx.sim.store.add("files", record)
        ctx.sim.files[file_id] = content
    return ctx.ok(_render_file(record))


@route("v1", "GET", "/files")
async def list_files(ctx: Ctx) -> Response:
    page, pagination = offset_page(ctx.sim.store.rows("files"), ctx.query, max_limit=MAX_FILES_PAGE)
    return ctx.ok([_render_file(f) for f in page], additional_data={"pagination": pagination})


@route("v1", "GET", "/files/{id}")
async def get_file(ctx: Ctx) -> Response:
    return ctx.ok(_render_file(fetch_live(ctx.sim, "files", ctx.int_param(), "File")))


@route("v1", "GET", "/files/{id}/download")
async def download_file(ctx: Ctx) -> Response:
    record = fetch_live(ctx.sim, "files", ctx.int_param(), "File")
    # Headers are Latin-1: a name in any other script goes as RFC 6266's `filename*` (UTF-8, percent-encoded).
    return Response(ctx.sim.files[record["id"]], media_type="application/octet-stream",
                    headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(record['file_name'], safe='')}"})


@route("v1", "DELETE", "/files/{id}")
async def delete_file(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        record = fetch_live(ctx.sim, "files", ctx.int_param(), "File")
        record["is_deleted"] = True
    return ctx.ok({"id": record["id"]})


# -- users, activity types, currencies -------------------------------------------------------
def _render_user(ctx: Ctx, user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "is_you": user["id"] == ctx.user_id}


@route("v1", "GET", "/users")
async def list_users(ctx: Ctx) -> Response:
    return ctx.ok([_render_user(ctx, user) for user in ctx.sim.users.values()])


@route("v1", "GET", "/users/me")
async def get_me(ctx: Ctx) -> Response:
    return ctx.ok(_render_user(ctx, ctx.sim.users[ctx.user_id]))


@route("v1", "GET", "/users/{id}")
async def get_user(ctx: Ctx) -> Response:
    user = ctx.sim.users.get(ctx.int_param())
    if user is None:
        raise not_found("User")
    return ctx.ok(_render_user(ctx, user))


@route("v1", "GET", "/activityTypes")
async def list_activity_types(ctx: Ctx) -> Response:
    return ctx.ok(ctx.sim.activity_types)


@route("v1", "GET", "/currencies")
async def list_currencies(ctx: Ctx) -> Response:
    return ctx.ok(list(ctx.sim.currencies.values()))


# -- organization relationships --------------------------------------------------------------
def _org_info(sim: Simulator, org_id: int) -> dict[str, Any]:
    org = sim.store.get("organizations", org_id) or {}
    people = sum(1 for p in sim.store.rows("persons") if p.get("org_id") == org_id)
    return {"name": org.get("name"), "people_count": people, "owner_id": org.get("owner_id"),
            "address": (org.get("address") or {}).get("value"), "cc_email": None, "value": org_id}


def _render_relationship(sim: Simulator, rel: dict[str, Any], for_org: int | None = None) -> dict[str, Any]:
    out = {"id": rel["id"], "type": rel["type"], "rel_owner_org_id": _org_info(sim, rel["rel_owner_org_id"]),
           "rel_linked_org_id": _org_info(sim, rel["rel_linked_org_id"]), "add_time": rel["add_time"],
           "update_time": rel["update_time"], "active_flag": "false" if rel["is_deleted"] else "true"}
    if for_org is not None:
        other = rel["rel_linked_org_id"] if rel["rel_owner_org_id"] == for_org else rel["rel_owner_org_id"]
        calculated = rel["type"]
        if rel["type"] == "parent":
            calculated = "daughter" if rel["rel_owner_org_id"] == for_org else "parent"
        out.update(calculated_type=calculated, calculated_related_org_id=other,
                   related_organization_name=_org_info(sim, other)["name"])
    return out


def _apply_relationship(sim: Simulator, body: dict[str, Any], rel: dict[str, Any]) -> None:
    merged = {**rel, **body}
    owner, linked = merged.get("rel_owner_org_id"), merged.get("rel_linked_org_id")
    require_live(sim, "organizations", owner, "rel_owner_org_id", "Organization")
    require_live(sim, "organizations", linked, "rel_linked_org_id", "Organization")
    if owner == linked:
        raise bad_request("An organization cannot be related to itself")
    others = [r for r in sim.store.rows("organization_relationships") if r["id"] != rel.get("id")]
    if merged["type"] == "parent":
        if any(r["type"] == "parent" and r["rel_linked_org_id"] == linked for r in others):
            raise bad_request(f"Organization {linked} already has a parent organization")
        parents = {r["rel_linked_org_id"]: r["rel_owner_org_id"] for r in others if r["type"] == "parent"}
        cursor, seen = owner, set()
        while cursor in parents and cursor not in seen:
            seen.add(cursor)
            cursor = parents[cursor]
            if cursor == linked:
                raise bad_request("The relationship would create a circular parent chain")
    rel.update({k: v for k, v in body.items() if k != "org_id"})


@route("v1", "GET", "/organizationRelationships")
async def list_relationships(ctx: Ctx) -> Response:
    org_id = ctx.query["org_id"]
    rows = [r for r in ctx.sim.store.rows("organization_relationships")
            if org_id in (r["rel_owner_org_id"], r["rel_linked_org_id"])]
    return ctx.ok([_render_relationship(ctx.sim, r, org_id) for r in rows])


@route("v1", "POST", "/organizationRelationships")
async def create_relationship(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        stamp = ctx.sim.ts_v1()
        rel: dict[str, Any] = {"id": ctx.sim.store.new_id("organization_relationships"), "add_time": stamp,
                               "update_time": stamp, "is_deleted": False}
        _apply_relationship(ctx.sim, body, rel)
        ctx.sim.store.add("organization_relationships", rel)
    return ctx.ok(_render_relationship(ctx.sim, rel))


@route("v1", "GET", "/organizationRelationships/{id}")
async def get_relationship(ctx: Ctx) -> Response:
    rel = fetch_live(ctx.sim, "organization_relationships", ctx.int_param(), "Organization relationship")
    return ctx.ok(_render_relationship(ctx.sim, rel, ctx.query.get("org_id")))


@route("v1", "PUT", "/organizationRelationships/{id}")
async def update_relationship(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        rel = fetch_live(ctx.sim, "organization_relationships", ctx.int_param(), "Organization relationship")
        candidate = copy.deepcopy(rel)
        _apply_relationship(ctx.sim, body, candidate)
        candidate["update_time"] = ctx.sim.ts_v1()
        rel.update(candidate)
    return ctx.ok(_render_relationship(ctx.sim, rel))


@route("v1", "DELETE", "/organizationRelationships/{id}")
async def delete_relationship(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        rel = fetch_live(ctx.sim, "organization_relationships", ctx.int_param(), "Organization relationship")
        rel["is_deleted"] = True
    return ctx.ok({"id": rel["id"]})
