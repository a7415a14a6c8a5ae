"""v2 deal products: products attached to deals, one at a time or up to 100 per bulk call.

As in Pipedrive, a deal with products takes its value from their sums.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive.responses import not_found
from migration_pipeline.sandbox.pipedrive.routing import (
    Ctx,
    cursor_page,
    invalid,
    require_live,
    route,
    sort_rows,
)
from migration_pipeline.sandbox.pipedrive.simulator import Simulator

MAX_BULK = 100


def _sum(item: dict[str, Any]) -> float:
    gross = item["item_price"] * item["quantity"]
    discount = gross * item["discount"] / 100 if item["discount_type"] == "percentage" else item["discount"]
    net = gross - discount
    return round(net * (1 + item["tax"] / 100) if item["tax_method"] == "exclusive" else net, 2)


def _apply(sim: Simulator, body: dict[str, Any], item: dict[str, Any]) -> None:
    if "product_id" in body:
        product = require_live(sim, "products", body["product_id"], "product_id", "Product")
        item["product_id"], item["name"] = product["id"], product["name"]
    for key in ("item_price", "quantity", "tax", "comments", "discount", "is_enabled", "tax_method", "discount_type",
                "product_variation_id", "billing_frequency", "billing_frequency_cycles", "billing_start_date"):
        if key in body:
            item[key] = body[key]
    if item["quantity"] <= 0:
        raise invalid("quantity", "Value must be greater than 0")
    item["sum"] = _sum(item)


def _new_item(sim: Simulator, deal: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    stamp = sim.ts_v2()
    siblings = [p for p in sim.store.rows("deal_products") if p["deal_id"] == deal["id"]]
    item: dict[str, Any] = {
        "id": sim.store.new_id("deal_products"), "deal_id": deal["id"], "tax": 0, "comments": "", "discount": 0,
        "discount_type": "percentage", "tax_method": "inclusive", "is_enabled": True, "product_variation_id": None,
        "billing_frequency": "one-time", "billing_frequency_cycles": None, "billing_start_date": None,
        "currency": deal["currency"], "order_nr": 1 + max((p["order_nr"] for p in siblings), default=0),
        "add_time": stamp, "update_time": stamp,
    }
    _apply(sim, body, item)
    return item


def _revalue(sim: Simulator, deal: dict[str, Any]) -> None:
    items = [p for p in sim.store.rows("deal_products") if p["deal_id"] == deal["id"] and p["is_enabled"]]
    if items or any(p["deal_id"] == deal["id"] for p in sim.store.rows("deal_products")):
        deal["value"] = round(sum(p["sum"] for p in items), 2)
    deal["update_time"] = sim.ts_v2()


def _deal(ctx: Ctx) -> dict[str, Any]:
    deal = ctx.sim.store.live("deals", ctx.int_param())
    if deal is None:
        raise not_found("Deal")
    return deal


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "is_deleted"}


@route("v2", "GET", "/deals/{id}/products")
async def list_deal_products(ctx: Ctx) -> Response:
    deal = _deal(ctx)
    rows = sort_rows([p for p in ctx.sim.store.rows("deal_products") if p["deal_id"] == deal["id"]], ctx.query)
    page, additional = cursor_page(rows, ctx.query)
    return ctx.ok([_strip(p) for p in page], additional_data=additional)


@route("v2", "GET", "/deals/products")
async def list_products_of_deals(ctx: Ctx) -> Response:
    deal_ids = ctx.query["deal_ids"]
    if not deal_ids or len(deal_ids) > 100:
        raise invalid("deal_ids", "Between 1 and 100 deal ids are required")
    wanted = set(deal_ids)
    rows = sort_rows([p for p in ctx.sim.store.rows("deal_products") if p["deal_id"] in wanted], ctx.query)
    page, additional = cursor_page(rows, ctx.query)
    return ctx.ok([_strip(p) for p in page], additional_data=additional)


@route("v2", "POST", "/deals/{id}/products")
async def add_deal_product(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        deal = _deal(ctx)
        item = ctx.sim.store.add("deal_products", _new_item(ctx.sim, deal, body))
        _revalue(ctx.sim, deal)
    return ctx.ok(_strip(item), status=201)


@route("v2", "POST", "/deals/{id}/products/bulk")
async def add_deal_products_bulk(ctx: Ctx) -> Response:
    body = await ctx.validated()
    if not body["data"]:
        raise invalid("data", "Array must contain at least 1 item")
    with ctx.sim.lock:
        deal = _deal(ctx)
        items = [_new_item(ctx.sim, deal, entry) for entry in body["data"]]
        for item in items:
            ctx.sim.store.add("deal_products", item)
        _revalue(ctx.sim, deal)
    return ctx.ok([_strip(item) for item in items], status=201)


def _attachment(ctx: Ctx, deal: dict[str, Any]) -> dict[str, Any]:
    item = ctx.sim.store.get("deal_products", ctx.int_param("product_attachment_id"))
    if item is None or item["deal_id"] != deal["id"]:
        raise not_found("Product attachment")
    return item


@route("v2", "PATCH", "/deals/{id}/products/{product_attachment_id}")
async def update_deal_product(ctx: Ctx) -> Response:
    body = await ctx.validated()
    with ctx.sim.lock:
        deal = _deal(ctx)
        item = _attachment(ctx, deal)
        _apply(ctx.sim, body, item)
        item["update_time"] = ctx.sim.ts_v2()
        _revalue(ctx.sim, deal)
    return ctx.ok(_strip(item))


@route("v2", "DELETE", "/deals/{id}/products/{product_attachment_id}")
async def delete_deal_product(ctx: Ctx) -> Response:
    with ctx.sim.lock:
        deal = _deal(ctx)
        item = _attachment(ctx, deal)
        ctx.sim.store.remove("deal_products", item["id"])
        _revalue(ctx.sim, deal)
    return ctx.ok({"id": item["id"]})
