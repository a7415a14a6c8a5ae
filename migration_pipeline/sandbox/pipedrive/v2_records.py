"""v2 organizations, persons, deals, activities, products, pipelines, stages, deal products.

Each entity has one `_apply_*` function that checks a validated body against the state
(references, formats, plan rules) and writes it onto a record; create and patch share it.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive import fields
from migration_pipeline.sandbox.pipedrive.responses import ApiError, bad_request
from migration_pipeline.sandbox.pipedrive.routing import (
    Ctx,
    cursor_page,
    fetch,
    fetch_live,
    invalid,
    parse_ids,
    require_live,
    require_owner,
    require_rfc3339,
    require_visible_to,
    route,
    sort_rows,
    updated_window,
)
from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed
from migration_pipeline.sandbox.pipedrive.simulator import Simulator

# url segment -> (table, custom-field entity or None, display name)
ENTITIES: dict[str, tuple[str, str | None, str]] = {
    "organizations": ("organizations", "organization", "Organization"),
    "persons": ("persons", "person", "Person"),
    "deals": ("deals", "deal", "Deal"),
    "activities": ("activities", None, "Activity"),
    "products": ("products", "product", "Product"),
    "pipelines": ("pipelines", None, "Pipeline"),
    "stages": ("stages", None, "Stage"),
}
ACTIVITY_PERSON_READ_ONLY = "'person_id' is a read-only field. Add a primary participant to set 'person_id' instead."


def render(sim: Simulator, segment: str, record: dict[str, Any], only: set[str] | None = None) -> dict[str, Any]:
    _, entity, _ = ENTITIES[segment]
    out = copy.deepcopy(record)
    if entity is not None and entity != "activity":
        values = sim.field_values(entity, record.get("custom_fields", {}))
        out["custom_fields"] = {k: v for k, v in values.items() if only is None or k in only}
    return out


def _custom(sim: Simulator, entity: str, body: dict[str, Any], record: dict[str, Any]) -> None:
    if "custom_fields" not in body:
        return
    try:
        values = fields.check_values(sim.custom_fields(entity), body["custom_fields"], sim.refs())
    except ValidationFailed as error:
        raise ApiError(400, str(error), "ERR_SCHEMA_VALIDATION_FAILED") from error
    record.setdefault("custom_fields", {}).update(values)


def _common(sim: Simulator, body: dict[str, Any], record: dict[str, Any]) -> None:
    if "owner_id" in body:
        record["owner_id"] = require_owner(sim, body["owner_id"])
    if "visible_to" in body:
        record["visible_to"] = require_visible_to(sim, body["visible_to"])
    if "org_id" in body and body["org_id"] is not None:
        require_live(sim, "organizations", body["org_id"], "org_id", "Organization")
    if "person_id" in body and body["person_id"] is not None:
        require_live(sim, "persons", body["person_id"], "person_id", "Person")
    if body.get("add_time") is not None:
        record["add_time"] = require_rfc3339(body["add_time"], "add_time")


def _non_empty(body: dict[str, Any], key: str, creating: bool) -> None:
    if (creating and key not in body) or (key in body and (body[key] is None or not str(body[key]).strip())):
        raise invalid(key, f"Parameter '{key}' is required and must not be empty")


def _contacts(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    primaries = sum(1 for item in items if item.get("primary"))
    if primaries > 1:
        raise invalid(key, "Only one item can be marked as primary")
    out = []
    for index, item in enumerate(items):
        if "value" not in item or not item["value"]:
            raise invalid(f"{key}.{index}.value", "Parameter 'value' is required")
        out.append({"value": item["value"], "primary": bool(item.get("primary")) or (primaries == 0 and index == 0),
                    "label": item.get("label", "work")})
    return out


def _address(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not value.get("value"):
        raise invalid("address.value", "Parameter 'value' is required")
    return {part: value.get(part) for part in fields.ADDRESS_PARTS if part != "formatted_address"}


def _apply_organization(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _non_empty(body, "name", creating)
    _common(sim, body, record)
    for key in ("name", "label_ids", "website", "linkedin", "industry", "annual_revenue", "employee_count"):
        if key in body:
            record[key] = body[key]
    if "address" in body:
        record["address"] = _address(body["address"])
    _custom(sim, "organization", body, record)


def _apply_person(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _non_empty(body, "name", creating)
    _common(sim, body, record)
    if "name" in body:
        first, _, last = body["name"].strip().partition(" ")
        record.update(name=body["name"], first_name=first, last_name=last)
    if "org_id" in body:
        record["org_id"] = body["org_id"]
    for key in ("emails", "phones", "im"):
        if key in body:
            record[key] = _contacts(body[key], key)
    for key in ("label_ids", "marketing_status", "notes", "birthday", "job_title"):
        if key in body:
            record[key] = body[key]
    if "postal_address" in body:
        record["postal_address"] = _address(body["postal_address"])
    _custom(sim, "person", body, record)


def _apply_deal(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    if not creating and record.get("is_archived") and set(body) - {"is_archived"}:
        raise bad_request("Archived deals cannot be edited. Unarchive the deal first.")
    _non_empty(body, "title", creating)
    if body.get("is_deleted"):
        raise invalid("is_deleted", "A deal cannot be created or updated as deleted; use DELETE")
    _common(sim, body, record)
    for key in ("title", "org_id", "person_id", "value", "probability", "label_ids", "expected_close_date"):
        if key in body:
            record[key] = body[key]
    if "currency" in body:
        if body["currency"] not in sim.currencies:
            raise bad_request(f"Currency {body['currency']!r} does not exist (currency)")
        record["currency"] = body["currency"]
    _pipeline_and_stage(sim, body, record, creating)
    status = body.get("status", record.get("status", "open"))
    if status not in ("open", "won", "lost"):
        raise invalid("status", "Value must be one of: open, won, lost")
    for key, allowed in (("won_time", {"won"}), ("lost_time", {"lost"}), ("lost_reason", {"lost"}),
                         ("close_time", {"won", "lost"})):
        if body.get(key) is not None and status not in allowed:
            raise bad_request(f"'{key}' can only be set on a deal with status {' or '.join(sorted(allowed))}")
        if key in body and key != "lost_reason" and body[key] is not None:
            require_rfc3339(body[key], key)
    if "status" in body and body["status"] != record.get("status"):
        stamp = sim.ts_v2()
        record["won_time"] = stamp if status == "won" else None
        record["lost_time"] = stamp if status == "lost" else None
        record["close_time"] = stamp if status in ("won", "lost") else None
        if status != "lost":
            record["lost_reason"] = None
    record["status"] = status
    for key in ("won_time", "lost_time", "lost_reason", "close_time"):
        if key in body:
            record[key] = body[key]
    if "is_archived" in body:
        record["is_archived"] = body["is_archived"]
        record["archive_time"] = (require_rfc3339(body["archive_time"], "archive_time") if body.get("archive_time")
                                  else sim.ts_v2()) if body["is_archived"] else None
    _custom(sim, "deal", body, record)


def _pipeline_and_stage(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    if "stage_id" in body:
        stage = require_live(sim, "stages", body["stage_id"], "stage_id", "Stage")
        if "pipeline_id" in body and body["pipeline_id"] != stage["pipeline_id"]:
            raise bad_request(f"Stage {stage['id']} does not belong to pipeline {body['pipeline_id']}")
        if stage["id"] != record.get("stage_id"):
            record["stage_change_time"] = sim.ts_v2()
        record["stage_id"], record["pipeline_id"] = stage["id"], stage["pipeline_id"]
    elif "pipeline_id" in body or creating:
        if "pipeline_id" in body:
            pipeline = require_live(sim, "pipelines", body["pipeline_id"], "pipeline_id", "Pipeline")
        else:
            pipelines = sorted(sim.store.rows("pipelines"), key=lambda p: (p.get("order_nr", 0), p["id"]))
            if not pipelines:
                raise bad_request("The company has no pipeline to put the deal in")
            pipeline = pipelines[0]
        stages = sorted((s for s in sim.store.rows("stages") if s["pipeline_id"] == pipeline["id"]),
                        key=lambda s: (s.get("order_nr", 0), s["id"]))
        if not stages:
            raise bad_request(f"Pipeline {pipeline['id']} has no stages")
        if record.get("pipeline_id") != pipeline["id"]:
            record["stage_id"], record["pipeline_id"] = stages[0]["id"], pipeline["id"]
            record["stage_change_time"] = sim.ts_v2()


def _apply_activity(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _common(sim, {k: v for k, v in body.items() if k != "person_id"}, record)
    if "type" in body or creating:
        kinds = [kind for kind in sim.activity_types if kind.get("active_flag", True)]
        key = body.get("type", kinds[0]["key_string"] if kinds else "task")
        kind = next((k for k in kinds if k["key_string"] == key), None)
        if kind is None:
            raise bad_request(f"Activity type '{key}' does not exist or is not active (type)")
        record["type"] = key
        if creating and "subject" not in body:
            record["subject"] = kind["name"]
    if "deal_id" in body and body["deal_id"] is not None:
        require_live(sim, "deals", body["deal_id"], "deal_id", "Deal")
    if "lead_id" in body and body["lead_id"] is not None:
        require_live(sim, "leads", body["lead_id"], "lead_id", "Lead")
    if "due_date" in body and body["due_date"] is not None:
        _date(body["due_date"])
    for key in ("due_time", "duration"):
        if body.get(key) is not None and not fields._TIME.match(body[key]):
            raise invalid(key, "Expected a time in format HH:MM")
    for key in ("subject", "deal_id", "lead_id", "org_id", "project_id", "due_date", "due_time", "duration", "busy",
                "public_description", "priority", "note", "attendees"):
        if key in body:
            record[key] = body[key]
    if "location" in body:
        record["location"] = _address(body["location"])
    if "participants" in body:
        participants = body["participants"]
        if sum(1 for p in participants if p.get("primary")) > 1:
            raise invalid("participants", "Only one participant can be primary")
        for index, participant in enumerate(participants):
            if "person_id" not in participant:
                raise invalid(f"participants.{index}.person_id", "Parameter 'person_id' is required")
            require_live(sim, "persons", participant["person_id"], f"participants.{index}.person_id", "Person")
        record["participants"] = [{"person_id": p["person_id"], "primary": bool(p.get("primary"))}
                                  for p in participants]
        primary = next((p for p in record["participants"] if p["primary"]), None)
        record["person_id"] = primary["person_id"] if primary else None
    if "done" in body:
        if body["done"] and not record.get("done"):
            record["marked_as_done_time"] = sim.ts_v2()
        elif not body["done"]:
            record["marked_as_done_time"] = None
        record["done"] = body["done"]


def _date(value: str) -> None:
    try:
        fields._date(value, "due_date")
    except ValidationFailed as error:
        raise ApiError(400, str(error), "ERR_SCHEMA_VALIDATION_FAILED") from error


def _apply_product(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _non_empty(body, "name", creating)
    _common(sim, body, record)
    for key in ("name", "code", "description", "unit", "tax", "is_linkable", "billing_frequency",
                "billing_frequency_cycles"):
        if key in body:
            record[key] = body[key]
    if "category" in body:
        record["category"] = None if body["category"] is None else str(body["category"])
    if "prices" in body:
        record["prices"] = _prices(sim, body["prices"], record["id"])
    _custom(sim, "product", body, record)


def _prices(sim: Simulator, prices: list[Any], product_id: int) -> list[dict[str, Any]]:
    out, seen = [], set()
    for index, price in enumerate(prices):
        where = f"prices.{index}"
        if type(price) is not dict:
            raise invalid(where, "Expected 'object' as value")
        for key in price:
            if key not in ("currency", "price", "cost", "direct_cost", "notes"):
                raise invalid(f"{where}.{key}", f"Parameter '{key}' is not allowed for this request")
        if type(price.get("currency")) is not str or price["currency"] not in sim.currencies:
            raise invalid(f"{where}.currency", "Expected an existing currency code")
        if price["currency"] in seen:
            raise invalid(f"{where}.currency", "Only one price per currency is allowed")
        seen.add(price["currency"])
        for key in ("price", "cost", "direct_cost"):
            if key in price and price[key] is not None and type(price[key]) not in (int, float):
                raise invalid(f"{where}.{key}", "Expected 'number' as value")
        out.append({"product_id": product_id, "price": price.get("price", 0), "currency": price["currency"],
                    "cost": price.get("cost", 0), "direct_cost": price.get("direct_cost"),
                    "notes": price.get("notes", "")})
    return out


def _apply_pipeline(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _non_empty(body, "name", creating)
    record.update(body)
    if creating:
        record["order_nr"] = 1 + max((p.get("order_nr", 0) for p in sim.store.rows("pipelines")), default=0)
        record.setdefault("is_deal_probability_enabled", False)


def _apply_stage(sim: Simulator, body: dict[str, Any], record: dict[str, Any], creating: bool) -> None:
    _non_empty(body, "name", creating)
    if "pipeline_id" in body:
        require_live(sim, "pipelines", body["pipeline_id"], "pipeline_id", "Pipeline")
        if body["pipeline_id"] != record.get("pipeline_id"):
            siblings = [s for s in sim.store.rows("stages") if s["pipeline_id"] == body["pipeline_id"]]
            record["order_nr"] = 1 + max((s.get("order_nr", 0) for s in siblings), default=0)
    if "deal_probability" in body and not 0 <= body["deal_probability"] <= 100:
        raise invalid("deal_probability", "Value must be between 0 and 100")
    record.update(body)
    if creating:
        record.setdefault("deal_probability", 100)
        record.setdefault("is_deal_rot_enabled", False)
        record.setdefault("days_to_rotten", None)


APPLY = {"organizations": _apply_organization, "persons": _apply_person, "deals": _apply_deal,
         "activities": _apply_activity, "products": _apply_product, "pipelines": _apply_pipeline,
         "stages": _apply_stage}
CREATE_STATUS = {"products": 201}


def _defaults(sim: Simulator, segment: str, user_id: int) -> dict[str, Any]:
    stamp = sim.ts_v2()
    base: dict[str, Any] = {"add_time": stamp, "update_time": stamp, "is_deleted": False}
    if segment in ("organizations", "persons", "deals", "products", "activities"):
        base.update(owner_id=user_id, visible_to=3)
    if segment in ("organizations", "persons", "deals", "products"):
        base["custom_fields"] = {}
    if segment in ("organizations", "persons"):
        base.update(label_ids=[])
    if segment == "organizations":
        base.update(address=None, website=None, linkedin=None, industry=None, annual_revenue=None, employee_count=None)
    if segment == "persons":
        base.update(org_id=None, emails=[], phones=[], picture_id=None)
    if segment == "deals":
        currency = sim.users.get(user_id, {}).get("default_currency") or next(iter(sim.currencies), "EUR")
        base.update(creator_user_id=user_id, person_id=None, org_id=None, value=0, currency=currency, status="open",
                    probability=None, lost_reason=None, close_time=None, won_time=None, lost_time=None,
                    expected_close_date=None, label_ids=[], is_archived=False, archive_time=None,
                    origin="API", origin_id=None, channel=None, channel_id=None, stage_change_time=None,
                    arr=None, mrr=None, acv=None)
    if segment == "activities":
        base.update(creator_user_id=user_id, deal_id=None, lead_id=None, person_id=None, org_id=None, project_id=None,
                    due_date=None, due_time=None, duration=None, busy=False, done=False, marked_as_done_time=None,
                    location=None, participants=[], attendees=[], public_description=None, priority=None, note=None)
    if segment == "products":
        base.update(code=None, description=None, unit=None, tax=0, category=None, is_linkable=True,
                    billing_frequency="one-time", billing_frequency_cycles=None, prices=[])
    return base


def _make_crud(segment: str) -> None:
    table, _, what = ENTITIES[segment]

    @route("v2", "GET", f"/{segment}")
    async def list_records(ctx: Ctx) -> Response:
        rows = ctx.sim.store.rows(table)
        if segment == "deals":
            statuses = set(ctx.query.get("status", "open,won,lost").split(","))
            rows = ctx.sim.store.rows(table, include_deleted="deleted" in statuses)
            rows = [r for r in rows if not r.get("is_archived")
                    and (r["status"] in statuses or (r["is_deleted"] and "deleted" in statuses))]
        if "ids" in ctx.query:
            wanted = parse_ids(ctx.query["ids"])
            rows = [r for r in rows if r["id"] in wanted]
        for key in ("owner_id", "org_id", "person_id", "deal_id", "pipeline_id", "stage_id", "lead_id", "done"):
            if key in ctx.query:
                if key == "deal_id" and segment == "persons":
                    deal = ctx.sim.store.get("deals", ctx.query[key])
                    rows = [r for r in rows if deal is not None and r["id"] == deal.get("person_id")]
                else:
                    rows = [r for r in rows if r.get(key) == ctx.query[key]]
        rows = sort_rows(updated_window(rows, ctx.query), ctx.query)
        page, additional = cursor_page(rows, ctx.query)
        only = _only(ctx)
        return ctx.ok([render(ctx.sim, segment, r, only) for r in page], additional_data=additional)

    @route("v2", "GET", f"/{segment}/{{id}}")
    async def get_record(ctx: Ctx) -> Response:
        record = fetch(ctx.sim, table, ctx.int_param(), what)
        return ctx.ok(render(ctx.sim, segment, record, _only(ctx)))

    @route("v2", "POST", f"/{segment}")
    async def create_record(ctx: Ctx) -> Response:
        if segment == "activities":
            raw = await ctx.json()
            if "person_id" in raw:
                raise bad_request(ACTIVITY_PERSON_READ_ONLY)
        body = await ctx.validated()
        with ctx.sim.lock:
            if segment == "deals" and not body.get("is_archived"):
                ctx.sim.check_deal_cap("deal")
            record = {"id": ctx.sim.store.new_id(table), **_defaults(ctx.sim, segment, ctx.user_id)}
            APPLY[segment](ctx.sim, body, record, True)
            ctx.sim.store.add(table, record)
        return ctx.ok(render(ctx.sim, segment, record), status=CREATE_STATUS.get(segment, 200))

    @route("v2", "PATCH", f"/{segment}/{{id}}")
    async def update_record(ctx: Ctx) -> Response:
        if segment == "activities" and "person_id" in await ctx.json():
            raise bad_request(ACTIVITY_PERSON_READ_ONLY)
        body = await ctx.validated()
        with ctx.sim.lock:
            current = fetch_live(ctx.sim, table, ctx.int_param(), what)
            if segment == "deals" and current.get("is_archived") and body.get("is_archived") is False:
                ctx.sim.check_deal_cap("deal")
            record = copy.deepcopy(current)
            APPLY[segment](ctx.sim, body, record, False)
            record["update_time"] = ctx.sim.ts_v2()
            current.clear()
            current.update(record)
        return ctx.ok(render(ctx.sim, segment, current))

    @route("v2", "DELETE", f"/{segment}/{{id}}")
    async def delete_record(ctx: Ctx) -> Response:
        with ctx.sim.lock:
            record = fetch_live(ctx.sim, table, ctx.int_param(), what)
            record["is_deleted"] = True
            record["update_time"] = ctx.sim.ts_v2()
        return ctx.ok({"id": record["id"]})


def _only(ctx: Ctx) -> set[str] | None:
    if "custom_fields" not in ctx.query:
        return None
    keys = {key for key in ctx.query["custom_fields"].split(",") if key}
    if len(keys) > 15:
        raise invalid("custom_fields", "At most 15 custom field keys are allowed")
    return keys


for _segment in ENTITIES:
    _make_crud(_segment)


@route("v2", "GET", "/deals/archived")
async def list_archived_deals(ctx: Ctx) -> Response:
    rows = [r for r in ctx.sim.store.rows("deals") if r.get("is_archived")]
    rows = sort_rows(updated_window(rows, ctx.query), ctx.query)
    page, additional = cursor_page(rows, ctx.query)
    return ctx.ok([render(ctx.sim, "deals", r) for r in page], additional_data=additional)
