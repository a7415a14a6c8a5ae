"""Dynamics products -> Pipedrive products, with one price per currency; bundles flattened.

Rules:
- `name` is required (cut to 255, reported); `code` is the product number; `description` is
  carried. Products are organisation-owned in Dynamics, so `owner_id` is left to Pipedrive.
- `prices` has one entry per currency: the amount of the product's price list item in that
  currency (items in `productpricelevels`; when several lists price it in one currency, the
  active list wins, then the newest `begindate`, then the smallest item id), plus the product's
  own list price in its own currency where no list prices it. `cost` is the standard cost, in the
  product's own currency. Each item used is merged into its product (rule `price_per_currency`);
  an item that loses to another, or whose product is not migrated, is rejected with the reason.
- Bundles (`productstructure` 3) do not exist in Pipedrive: a bundle is flattened into its member
  products (`productassociations`), merged into its first member (rule `bundle_flattened`),
  and every member carries the bundle's pricing in "Bundle Pricing" (bundle name and code,
  quantity per bundle, required or optional, the bundle's prices). Each association is merged
  into its member (rule `bundle_membership`). A bundle with no migrated member is migrated as a
  product, and reported. Product families (`productstructure` 2) are groupings, not products:
  they are not migrated.
- The Dynamics status (Active, Retired, ...) is kept in "Dynamics Status"; every product stays
  linkable, because historical deals must still be able to attach retired products.
"""

from __future__ import annotations

import functools

import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import (
    DYNAMICS_ID,
    NAME_LIMIT,
    TEXT_LIMIT,
    VARCHAR_LIMIT,
    Currencies,
    ObjectStage,
    Outcomes,
    RuleContext,
)
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, CustomFieldTarget

OBJECT = "products"
BUNDLE, FAMILY = 3, 2
ACTIVE = 0

CUSTOM_FIELDS = (
    CustomFieldTarget(name=DYNAMICS_ID_FIELD, field_type="varchar"),
    CustomFieldTarget(name="Dynamics Status", field_type="varchar"),
    CustomFieldTarget(name="Bundle Pricing", field_type="text"),
    CustomFieldTarget(name="Write-In Product", field_type="varchar"),
)


def transform_products(
    products: pd.DataFrame,
    productpricelevels: pd.DataFrame,
    pricelevels: pd.DataFrame,
    productassociations: pd.DataFrame,
    transactioncurrencies: pd.DataFrame,
    context: RuleContext,
) -> ObjectStage:
    """Every product staged, flattened into its bundle members, or rejected; every price item and association accounted for."""
    products = products.reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    currencies = Currencies.from_raw(transactioncurrencies)
    ids = products["productid"].astype(str)
    carry = functools.partial(outcomes.carry_column, products, ids)
    staged = common.frame_of({"source_id": ids}, products.index)
    staged["name"] = carry("name", "name", common.texts(NAME_LIMIT), "text")
    staged["code"] = carry("productnumber", "code", common.texts(VARCHAR_LIMIT), "text")
    staged["description"] = carry("description", "description", common.texts(TEXT_LIMIT), "text")
    staged[DYNAMICS_ID] = ids
    staged["custom:Dynamics Status"] = common.text(products["statecode__label"], VARCHAR_LIMIT).values

    nameless = staged["name"].isna().to_numpy()
    structure = pd.to_numeric(products["productstructure"], errors="coerce")
    family = (structure == FAMILY).to_numpy() & ~nameless
    outcomes.reject(ids[nameless], "*", None, "no product name; Pipedrive requires one", "required:name")
    outcomes.reject(ids[family], "*", None, "product family: a grouping of products, not a product; Pipedrive has none", "product_family")
    migrated = set(ids[~nameless & ~family])
    staged["prices"] = prices(products, productpricelevels, pricelevels, currencies, migrated, outcomes)

    bundles = set(ids[(structure == BUNDLE).to_numpy() & ~nameless])
    members = bundle_members(productassociations, bundles, migrated, outcomes)
    staged["custom:Bundle Pricing"] = bundle_pricing(staged, members)
    flattened = set(members["bundle"])
    first_member = members.sort_values(["bundle", "member"]).drop_duplicates("bundle")
    outcomes.merge(first_member["bundle"], OBJECT, first_member["member"], "bundle_flattened")
    lonely = sorted(bundles - flattened)
    outcomes.reject(lonely, "bundle", None, "bundle with no migrated member product; migrated as a product", "bundle_flattened")
    keep = ~nameless & ~family & ~common.is_in(ids, flattened)
    return outcomes.stage(staged[keep], bundle_members=members.reset_index(drop=True))


def price_items(productpricelevels: pd.DataFrame, pricelevels: pd.DataFrame, currencies: Currencies) -> pd.DataFrame:
    """Price list items with their currency code and their list's activity and start date."""
    lists = pricelevels.set_index(pricelevels["pricelevelid"].astype(str))
    list_id = productpricelevels["_pricelevelid_value"].astype(str)
    own_currency = productpricelevels["_transactioncurrencyid_value"].astype(object)
    list_currency = lists["_transactioncurrencyid_value"].reindex(list_id).to_numpy(dtype=object)
    currency_id = own_currency.where(own_currency.notna(), pd.Series(list_currency, index=productpricelevels.index))
    return pd.DataFrame({
        "item": productpricelevels["productpricelevelid"].astype(str).to_numpy(dtype=object),
        "product": productpricelevels["_productid_value"].astype(str).to_numpy(dtype=object),
        "currency": currencies.code_of(currency_id).to_numpy(dtype=object),
        "amount": pd.to_numeric(productpricelevels["amount"], errors="coerce").astype(float).to_numpy(),
        "active": (pd.to_numeric(lists["statecode"].reindex(list_id), errors="coerce") == ACTIVE).to_numpy(),
        "begins": lists["begindate"].reindex(list_id).astype(object).fillna("").astype(str).to_numpy(dtype=object),
    })


def prices(
    products: pd.DataFrame, productpricelevels: pd.DataFrame, pricelevels: pd.DataFrame, currencies: Currencies,
    migrated: set[str], outcomes: Outcomes,
) -> pd.Series:
    """`[{currency, price, cost?}]` per product, one entry per currency."""
    items = price_items(productpricelevels, pricelevels, currencies)
    lost_product = ~common.is_in(items["product"], migrated)
    outcomes.reject(items.loc[lost_product, "item"], "*", items.loc[lost_product, "product"], "its product is not migrated",
                    "price_per_currency", object_name="productpricelevels")
    unusable = ~lost_product & (items["currency"].isna() | items["amount"].isna())
    outcomes.reject(items.loc[unusable, "item"], "*", None, "no currency or amount", "price_per_currency", object_name="productpricelevels")
    usable = items[~lost_product & ~unusable].sort_values(["product", "currency", "active", "begins", "item"],
                                                         ascending=[True, True, False, False, True])
    winners = usable.drop_duplicates(["product", "currency"])
    losers = usable[~common.is_in(usable["item"], winners["item"])]
    outcomes.reject(losers["item"], "*", losers["currency"],
                    "another price list gives this product's price in this currency (active, then newest list)",
                    "price_per_currency", object_name="productpricelevels")
    outcomes.merge(winners["item"], OBJECT, winners["product"], "price_per_currency", object_name="productpricelevels")

    by_product: dict[str, dict[str, dict[str, float | str]]] = {}
    for row in winners.itertuples(index=False):
        by_product.setdefault(row.product, {})[row.currency] = {"currency": row.currency, "price": round(float(row.amount), 4)}
    own_currency = currencies.code_of(products["_transactioncurrencyid_value"])
    for product, currency, price, cost in zip(products["productid"].astype(str), own_currency,
                                              pd.to_numeric(products["price"], errors="coerce"),
                                              pd.to_numeric(products["standardcost"], errors="coerce"), strict=True):
        if currency is None:
            continue
        entries = by_product.setdefault(product, {})
        if currency not in entries and pd.notna(price):
            entries[currency] = {"currency": currency, "price": round(float(price), 4)}
        if currency in entries and pd.notna(cost):
            entries[currency]["cost"] = round(float(cost), 4)
    listed = [[entries[code] for code in sorted(entries)] or None for entries in (by_product.get(p, {}) for p in products["productid"].astype(str))]
    return common.plain_series(listed, products.index)


def bundle_members(productassociations: pd.DataFrame, bundles: set[str], migrated: set[str], outcomes: Outcomes) -> pd.DataFrame:
    """(association, bundle, member, quantity, required) for every usable membership; the rest rejected."""
    associations = pd.DataFrame({
        "association": productassociations["productassociationid"].astype(str).to_numpy(dtype=object),
        "bundle": productassociations["_productid_value"].astype(str).to_numpy(dtype=object),
        "member": productassociations["_associatedproduct_value"].astype(str).to_numpy(dtype=object),
        "quantity": pd.to_numeric(productassociations["quantity"], errors="coerce").fillna(1.0).astype(float).to_numpy(),
        "required": (pd.to_numeric(productassociations["productisrequired"], errors="coerce") == 1).to_numpy(),
    })
    usable = common.is_in(associations["bundle"], bundles) & common.is_in(associations["member"],
                          migrated) & ~common.is_in(associations["member"], bundles)
    outcomes.reject(associations.loc[~usable, "association"], "*", associations.loc[~usable, "member"],
                    "not a membership of a migrated bundle in a migrated, non-bundle product", "bundle_membership",
                    object_name="productassociations")
    members = associations[usable]
    outcomes.merge(members["association"], OBJECT, members["member"], "bundle_membership", object_name="productassociations")
    return members


def bundle_pricing(staged: pd.DataFrame, members: pd.DataFrame) -> pd.Series:
    """The pricing note each member product carries: which bundles it is in, how many, at what bundle price."""
    names = dict(zip(staged["source_id"], staged["name"], strict=True))
    codes = dict(zip(staged["source_id"], staged["code"], strict=True))
    price_lists = dict(zip(staged["source_id"], staged["prices"], strict=True))
    notes: dict[str, list[str]] = {}
    for row in members.sort_values(["member", "bundle"]).itertuples(index=False):
        bundle_prices = ", ".join(f"{p['price']:.2f} {p['currency']}" for p in price_lists.get(row.bundle) or [])
        notes.setdefault(row.member, []).append(
            f"Part of bundle '{names.get(row.bundle)}' ({codes.get(row.bundle)}): {row.quantity:g} per bundle, "
            f"{'required' if row.required else 'optional'}; bundle price {bundle_prices or 'not set'}"
        )
    text = staged["source_id"].map(lambda source_id: " | ".join(notes[source_id]) if source_id in notes else None)
    return common.plain_series(text)
