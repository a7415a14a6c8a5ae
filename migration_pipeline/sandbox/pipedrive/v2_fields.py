"""v2 field definitions (`dealFields`, `personFields`, ...) and the search endpoints."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive.fields import OPTION_TYPES, FieldDef
from migration_pipeline.sandbox.pipedrive.responses import bad_request, not_found
from migration_pipeline.sandbox.pipedrive.routing import Ctx, cursor_page, invalid, route
from migration_pipeline.sandbox.pipedrive.simulator import Simulator

FIELD_SEGMENTS = {"organizationFields": "organization", "personFields": "person", "dealFields": "deal",
                  "productFields": "product", "activityFields": "activity"}


def _include(ctx: Ctx) -> frozenset[str]:
    return frozenset(part for part in ctx.query.get("include_fields", "").split(",") if part)


def _field(ctx: Ctx, entity: str) -> FieldDef:
    definition = ctx.sim.fields[entity].get(ctx.params["field_code"])
    if definition is None or definition.is_deleted:
        raise not_found("Field")
    return definition


def _make_field_routes(segment: str, entity: str) -> None:
    @route("v2", "GET", f"/{segment}")
    async def list_fields(ctx: Ctx) -> Response:
        rows = [f for f in ctx.sim.fields[entity].values() if not f.is_deleted]
        page, additional = cursor_page(rows, ctx.query)
        return ctx.ok([f.v2(_include(ctx)) for f in page], additional_data=additional)

    @route("v2", "GET", f"/{segment}/{{field_code}}")
    async def get_field(ctx: Ctx) -> Response:
        return ctx.ok(_field(ctx, entity).v2(_include(ctx)))

    if entity == "activity":  # read-only per the spec
        return

    @route("v2", "POST", f"/{segment}")
    async def create_field(ctx: Ctx) -> Response:
        body = await ctx.validated()
        if not body["field_name"].strip() or len(body["field_name"]) > 255:
            raise invalid("field_name", "Value must be 1 to 255 characters long")
        labels = [option["label"] for option in body["options"]] if "options" in body else None
        extra = {key: body[key] for key in ("ui_visibility", "important_fields", "required_fields") if key in body}
        with ctx.sim.lock:
            definition = ctx.sim.create_field(entity, body["field_name"], body["field_type"], labels, **extra)
        return ctx.ok(definition.v2(frozenset(extra)))

    @route("v2", "PATCH", f"/{segment}/{{field_code}}")
    async def update_field(ctx: Ctx) -> Response:
        body = await ctx.validated()
        with ctx.sim.lock:
            definition = _field(ctx, entity)
            if not definition.is_custom_field:
                raise bad_request("System fields cannot be changed")
            if "field_name" in body:
                if not body["field_name"].strip():
                    raise invalid("field_name", "Value must not be empty")
                definition.field_name = body["field_name"]
            for key in ("ui_visibility", "important_fields", "required_fields"):
                if key in body:
                    setattr(definition, key, body[key])
            definition.update_time = ctx.sim.ts_v2()
        return ctx.ok(definition.v2())

    @route("v2", "POST", f"/{segment}/{{field_code}}/options")
    async def add_options(ctx: Ctx) -> Response:
        body = await ctx.validated()
        with ctx.sim.lock:
            definition = _field(ctx, entity)
            if definition.field_type not in OPTION_TYPES:
                raise bad_request("Options can only be added to enum and set fields")
            labels = [option["label"] for option in body]
            taken = {option["label"] for option in definition.options or []}
            duplicates = sorted(set(label for label in labels if label in taken or labels.count(label) > 1))
            if duplicates:
                raise invalid("label", f"Option labels must be unique: {', '.join(duplicates)}")
            added = ctx.sim.new_options(labels)
            definition.options = [*(definition.options or []), *added]
            definition.update_time = ctx.sim.ts_v2()
        return ctx.ok([{"id": option["id"], "label": option["label"]} for option in added])

    @route("v2", "DELETE", f"/{segment}/{{field_code}}")
    async def delete_field(ctx: Ctx) -> Response:
        with ctx.sim.lock:
            definition = _field(ctx, entity)
            if not definition.is_custom_field:
                raise bad_request("System fields cannot be deleted")
            definition.is_deleted = True
        return ctx.ok(definition.v2())


for _segment, _entity in FIELD_SEGMENTS.items():
    _make_field_routes(_segment, _entity)


# -- search ----------------------------------------------------------------------------------
SEARCH_FIELDS = {
    "person": {"name": ["name"], "email": ["emails"], "phone": ["phones"], "notes": ["notes"], "custom_fields": []},
    "organization": {"name": ["name"], "address": ["address"], "notes": [], "custom_fields": []},
    "deal": {"title": ["title"], "notes": [], "custom_fields": []},
    "product": {"name": ["name"], "code": ["code"], "custom_fields": []},
}
TABLES = {"person": "persons", "organization": "organizations", "deal": "deals", "product": "products"}
SEARCHABLE_CUSTOM_TYPES = {"varchar", "varchar_auto", "text", "phone", "address", "double"}


def _texts(sim: Simulator, entity: str, record: dict[str, Any], wanted: set[str]) -> list[tuple[str, str]]:
    """(search field, text) pairs of a record."""
    out: list[tuple[str, str]] = []
    for name, keys in SEARCH_FIELDS[entity].items():
        if name not in wanted:
            continue
        if name == "custom_fields":
            for code, definition in sim.custom_fields(entity).items():
                value = record.get("custom_fields", {}).get(code)
                if value is not None and definition.field_type in SEARCHABLE_CUSTOM_TYPES:
                    out.append((name, str(value["value"] if isinstance(value, dict) else value)))
            continue
        for key in keys:
            value = record.get(key)
            if isinstance(value, list):
                out.extend((name, str(item.get("value", ""))) for item in value)
            elif isinstance(value, dict):
                out.append((name, str(value.get("value") or "")))
            elif value is not None:
                out.append((name, str(value)))
    return out


def _matches(text: str, term: str, exact: bool) -> bool:
    return text.lower() == term.lower() if exact else term.lower() in text.lower()


def _item(sim: Simulator, entity: str, record: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {"id": record["id"], "type": entity, "visible_to": record.get("visible_to"),
                            "owner": {"id": record.get("owner_id")}, "custom_fields": [], "notes": []}
    custom = [str(v) for v in record.get("custom_fields", {}).values() if isinstance(v, str | int | float)]
    base["custom_fields"] = custom
    org = sim.store.get("organizations", record.get("org_id")) if record.get("org_id") else None
    org_stub = {"id": org["id"], "name": org["name"]} if org else None
    if entity == "person":
        base.update(name=record["name"], emails=[e["value"] for e in record.get("emails", [])],
                    phones=[p["value"] for p in record.get("phones", [])], organization=org_stub)
    elif entity == "organization":
        base.update(name=record["name"], address=(record.get("address") or {}).get("value"))
    elif entity == "deal":
        person = sim.store.get("persons", record.get("person_id")) if record.get("person_id") else None
        stage = sim.store.get("stages", record.get("stage_id"))
        base.update(title=record["title"], value=int(record.get("value") or 0), currency=record.get("currency"),
                    status=record.get("status"), is_archived=bool(record.get("is_archived")),
                    stage={"id": stage["id"], "name": stage["name"]} if stage else None,
                    person={"id": person["id"], "name": person["name"]} if person else None,
                    organization=org_stub)
    else:
        base.update(name=record["name"], code=record.get("code"), prices=record.get("prices", []))
    return base


def search(ctx: Ctx, entities: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    term = ctx.query["term"].strip()
    exact = ctx.query.get("exact_match", False)
    if len(term) < (1 if exact else 2):
        raise invalid("term", "The search term must be at least 2 characters long (1 with exact_match)")
    requested = set(ctx.query["fields"].split(",")) if "fields" in ctx.query else None
    results = []
    for entity in entities:
        wanted = set(SEARCH_FIELDS[entity]) if requested is None else requested & set(SEARCH_FIELDS[entity])
        for record in ctx.sim.store.rows(TABLES[entity]):
            if "organization_id" in ctx.query and record.get("org_id") != ctx.query["organization_id"]:
                continue
            hits = [text for _, text in _texts(ctx.sim, entity, record, wanted) if _matches(text, term, exact)]
            if hits:
                score = 1.0 if any(text.lower() == term.lower() for text in hits) else 0.5
                results.append({"result_score": score, "item": _item(ctx.sim, entity, record)})
    results.sort(key=lambda r: -r["result_score"])
    return cursor_page(results, ctx.query)


def _make_search(segment: str, entity: str) -> None:
    @route("v2", "GET", f"/{segment}/search")
    async def search_entity(ctx: Ctx) -> Response:
        page, additional = search(ctx, [entity])
        return ctx.ok({"items": page}, additional_data=additional)


for _segment, _entity in (("persons", "person"), ("organizations", "organization"), ("deals", "deal"),
                          ("products", "product")):
    _make_search(_segment, _entity)


@route("v2", "GET", "/itemSearch")
async def item_search(ctx: Ctx) -> Response:
    types = ctx.query.get("item_types")
    entities = [t for t in (types.split(",") if types else TABLES) if t in TABLES]
    page, additional = search(ctx, entities)
    return ctx.ok({"items": page, "related_items": []}, additional_data=additional)
