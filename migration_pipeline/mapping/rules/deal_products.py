"""Dynamics opportunity products -> products attached to Pipedrive deals.

Rules:
- Each line goes on its opportunity's deal (`ref:deal_id:deals`, the path of `POST /deals/{id}/
  products`) with `item_price` (price per unit), `quantity`, `discount` (the line's manual
  discount, `discount_type` "amount") and `tax`: Dynamics stores tax as an amount, Pipedrive as a
  percentage, so it becomes `tax / (amount - discount) * 100` with `tax_method` "exclusive".
  A line whose opportunity or product is not migrated is rejected.
- Bundle lines are expanded to member lines, because bundles are flattened into their member
  products. When Dynamics holds the member lines (child lines under the bundle line), they are
  used; otherwise a line per member is made from the bundle's associations (source id
  `<bundle line>/<member product>`, quantity = bundle quantity x member quantity). The bundle
  line's amount and discount are shared over the member lines in proportion to the members' list
  prices in the line's currency (by quantity when a member has no list price in it), to the cent,
  with the largest remainders rounding up, so the lines add up to the bundle line exactly; the
  bundle's tax rate applies to each. Each member line's `comments` says so. The bundle line is
  merged into its first member line (rule `bundle_line_expanded`).
- Write-in lines (no catalogue product) get a product per distinct write-in name, spaces and case
  aside (`write-in:<name>`, flagged "Write-In Product" = "yes", staged with the products), so
  they stay visible and reportable in Pipedrive; `write_ins` lists every such line.

Extra frames: `write_in_products` (staged products rows) and `write_ins` (source_id = line,
product = the write-in product's source id, name).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import (
    DYNAMICS_ID,
    NAME_LIMIT,
    Currencies,
    Links,
    ObjectStage,
    Outcomes,
    RuleContext,
    ref_column,
    synthetic_id,
)
from migration_pipeline.mapping.rules.products import BUNDLE, price_items

OBJECT = "deal_products"
DEAL = ref_column("deal_id", "deals")
PRODUCT = ref_column("product_id", "products")
COLUMNS = [
    "source_id", DEAL, PRODUCT, "item_price", "quantity", "discount", "discount_type", "tax", "tax_method", "comments",
]


def transform_deal_products(
    opportunityproducts: pd.DataFrame,
    products: pd.DataFrame,
    productassociations: pd.DataFrame,
    productpricelevels: pd.DataFrame,
    pricelevels: pd.DataFrame,
    transactioncurrencies: pd.DataFrame,
    context: RuleContext,
    links: Links,
) -> ObjectStage:
    """Every line staged (bundle lines as member lines, write-ins on their own products) or rejected."""
    lines = prepared_lines(opportunityproducts, Currencies.from_raw(transactioncurrencies), links)
    outcomes = Outcomes(OBJECT)
    lost_deal = lines["deal"].isna()
    outcomes.reject(lines.loc[lost_deal, "source_id"], "*", lines.loc[lost_deal, "opportunity"], "its opportunity is not migrated",
                    "line:opportunityid")
    lines = lines[~lost_deal]

    bundle_ids = set(products.loc[pd.to_numeric(products["productstructure"], errors="coerce") == BUNDLE, "productid"].astype(str))
    child_of = lines["parent_line"].where(common.is_in(lines["parent_line"], lines["source_id"]))
    has_children = common.is_in(lines["source_id"], child_of.dropna())
    is_bundle = has_children | common.is_in(lines["product"], bundle_ids)
    is_child = child_of.notna().to_numpy()
    write_in = lines["product"].isna().to_numpy() & ~is_bundle

    staged = [catalogue_lines(lines[~is_bundle & ~is_child & ~write_in], links, outcomes)]
    write_in_lines, write_in_products, write_ins = write_in_rows(lines[write_in], outcomes)
    staged.append(write_in_lines)
    members = bundle_members(productassociations, bundle_ids)
    list_prices = member_list_prices(products, productpricelevels, pricelevels, Currencies.from_raw(transactioncurrencies))
    member_lines = member_lines_of(lines[is_bundle], lines[is_child], members)
    lonely = lines[is_bundle & ~common.is_in(lines["source_id"], member_lines["parent"])]
    outcomes.reject(lonely["source_id"], "bundle", lonely["product"], "bundle with no member lines or members; kept as one line",
                    "bundle_line_expanded")
    staged.append(catalogue_lines(lonely, links, outcomes))
    names = dict(zip(products["productid"].astype(str), products["name"].astype(object), strict=True))
    staged.append(expanded_bundles(lines[is_bundle], member_lines, list_prices, names, links, outcomes))
    parts = [part for part in staged if len(part)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    return outcomes.stage(frame[COLUMNS].astype(object), write_in_products=write_in_products, write_ins=write_ins)


def prepared_lines(opportunityproducts: pd.DataFrame, currencies: Currencies, links: Links) -> pd.DataFrame:
    """The raw lines with plain names: ids, deal, product, amounts, currency."""
    raw = opportunityproducts.reset_index(drop=True)
    number = lambda column: pd.to_numeric(raw[column], errors="coerce").astype(float).to_numpy()  # noqa: E731
    return pd.DataFrame({
        "source_id": raw["opportunityproductid"].astype(str).to_numpy(dtype=object),
        "opportunity": common.plain_series(raw["_opportunityid_value"]).to_numpy(),
        "deal": links.resolve("opportunity", raw["_opportunityid_value"])["source_id"].to_numpy(),
        "product": common.plain_series(raw["_productid_value"]).to_numpy(),
        "parent_line": common.plain_series(raw["_parentbundleidref_value"]).to_numpy(),
        "write_in_name": common.first_present(raw["productdescription"], raw["opportunityproductname"]).to_numpy(dtype=object, na_value=None),
        "quantity": number("quantity"),
        "price": number("priceperunit"),
        "base": number("baseamount"),
        "discount": np.nan_to_num(number("manualdiscountamount")),
        "tax": np.nan_to_num(number("tax")),
        "line_number": pd.to_numeric(raw["lineitemnumber"], errors="coerce").fillna(0).to_numpy(),
        "currency": currencies.code_of(raw["_transactioncurrencyid_value"]).to_numpy(),
    })


def line_rows(lines: pd.DataFrame, product: pd.Series, item_price: pd.Series, quantity: pd.Series, discount: pd.Series,
              tax_rate: pd.Series, comments: pd.Series) -> pd.DataFrame:
    """Staged rows for lines (or member lines), with the tax method only where there is tax."""
    return pd.DataFrame({
        "source_id": lines["source_id"].to_numpy(dtype=object),
        DEAL: lines["deal"].to_numpy(dtype=object),
        PRODUCT: np.asarray(product, dtype=object),
        "item_price": [round(float(v), 4) for v in item_price],
        "quantity": [float(v) for v in quantity],
        "discount": [round(float(v), 2) for v in discount],
        "discount_type": "amount",
        "tax": [round(float(v), 4) for v in tax_rate],
        "tax_method": ["exclusive" if v > 0 else None for v in tax_rate],
        "comments": np.asarray(comments, dtype=object),
    }, dtype=object)


def tax_rates(lines: pd.DataFrame, outcomes: Outcomes) -> pd.Series:
    """Dynamics' tax amount as Pipedrive's percentage of the discounted amount."""
    base = pd.Series(np.where(np.isnan(lines["base"]), lines["price"] * lines["quantity"], lines["base"]), index=lines.index)
    taxable = base - lines["discount"]
    impossible = (lines["tax"] > 0) & (taxable <= 0)
    outcomes.reject(lines.loc[impossible, "source_id"], "tax", lines.loc[impossible, "tax"],
                    "tax on a zero or negative amount cannot be a rate", "tax:tax")
    rate = (lines["tax"] / taxable.where(taxable > 0) * 100).where(~impossible, 0.0)
    return rate.fillna(0.0)


def catalogue_lines(lines: pd.DataFrame, links: Links, outcomes: Outcomes) -> pd.DataFrame:
    product = links.resolve("product", lines["product"])
    lost = (product["object"] != "products").to_numpy()
    outcomes.reject(lines.loc[lost, "source_id"], "*", lines.loc[lost, "product"], "its product is not migrated", "line:productid")
    lines, product = lines[~lost], product[~lost]
    comments = pd.Series(None, index=lines.index, dtype=object)
    return line_rows(lines, product["source_id"], lines["price"].fillna(0.0), lines["quantity"].fillna(1.0), lines["discount"],
                     tax_rates(lines, outcomes), comments)


def write_in_rows(lines: pd.DataFrame, outcomes: Outcomes) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(staged write-in lines, a product per distinct write-in name, which line went to which product)."""
    names = lines["write_in_name"]
    nameless = names.isna().to_numpy()
    outcomes.reject(lines.loc[nameless, "source_id"], "*", None, "write-in line with no product name", "write_in")
    lines = lines[~nameless]
    key = common.normalized_name(lines["write_in_name"])
    product = key.map(lambda value: synthetic_id("write-in", value))
    first = pd.DataFrame({"source_id": product, "name": lines["write_in_name"], "line": lines["source_id"]}).sort_values(["source_id", "line"])
    first = first.drop_duplicates("source_id")
    made = pd.DataFrame({
        "source_id": first["source_id"].to_numpy(dtype=object),
        "name": common.text(first["name"], NAME_LIMIT).values.astype(object).to_numpy(),
        DYNAMICS_ID: first["source_id"].to_numpy(dtype=object),
        "custom:Write-In Product": "yes",
    }, dtype=object)
    comments = pd.Series("Write-in product in Dynamics", index=lines.index, dtype=object)
    staged = line_rows(lines, product, lines["price"].fillna(0.0), lines["quantity"].fillna(1.0), lines["discount"],
                       tax_rates(lines, outcomes), comments)
    write_ins = pd.DataFrame({"source_id": lines["source_id"].to_numpy(dtype=object), "product": product.to_numpy(dtype=object),
                              "name": lines["write_in_name"].to_numpy(dtype=object)}, dtype=object)
    return staged, made, write_ins


def bundle_members(productassociations: pd.DataFrame, bundle_ids: set[str]) -> pd.DataFrame:
    """(bundle, member, member_quantity) for every bundle's members."""
    members = pd.DataFrame({
        "bundle": productassociations["_productid_value"].astype(str).to_numpy(dtype=object),
        "member": productassociations["_associatedproduct_value"].astype(str).to_numpy(dtype=object),
        "member_quantity": pd.to_numeric(productassociations["quantity"], errors="coerce").fillna(1.0).astype(float).to_numpy(),
    })
    return members[common.is_in(members["bundle"], bundle_ids)].drop_duplicates(["bundle", "member"])


def member_list_prices(products: pd.DataFrame, productpricelevels: pd.DataFrame, pricelevels: pd.DataFrame, currencies: Currencies) -> pd.DataFrame:
    """(product, currency, list_price): the price the products rule gives each product in each currency."""
    items = price_items(productpricelevels, pricelevels, currencies).dropna(subset=["currency", "amount"])
    items = items.sort_values(["product", "currency", "active", "begins", "item"], ascending=[True, True, False, False, True])
    listed = items.rename(columns={"amount": "list_price"})[["product", "currency", "list_price"]]
    own = pd.DataFrame({
        "product": products["productid"].astype(str).to_numpy(dtype=object),
        "currency": currencies.code_of(products["_transactioncurrencyid_value"]).to_numpy(dtype=object),
        "list_price": pd.to_numeric(products["price"], errors="coerce").astype(float).to_numpy(),
    }).dropna()
    return pd.concat([listed, own], ignore_index=True).drop_duplicates(["product", "currency"])


def member_lines_of(bundles: pd.DataFrame, children: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """One row per member line (source_id, parent, product, quantity, line_number).

    A bundle line's own child lines where Dynamics has them; otherwise a line per member of the
    bundle, `<bundle line>/<member product>`, for the bundle quantity times the member quantity.
    """
    own = pd.DataFrame({
        "source_id": children["source_id"].to_numpy(dtype=object), "parent": children["parent_line"].to_numpy(dtype=object),
        "product": children["product"].to_numpy(dtype=object), "quantity": children["quantity"].fillna(1.0).to_numpy(),
        "line_number": children["line_number"].to_numpy(),
    })
    without = bundles[~common.is_in(bundles["source_id"], own["parent"])]
    made = pd.DataFrame({"parent": without["source_id"].to_numpy(dtype=object), "bundle": without["product"].to_numpy(dtype=object),
                         "bundle_quantity": without["quantity"].fillna(1.0).to_numpy()}).merge(members, on="bundle")
    made = pd.DataFrame({
        "source_id": (made["parent"] + "/" + made["member"]).to_numpy(dtype=object), "parent": made["parent"].to_numpy(dtype=object),
        "product": made["member"].to_numpy(dtype=object), "quantity": (made["member_quantity"] * made["bundle_quantity"]).to_numpy(),
        "line_number": 0,
    })
    return pd.concat([own, made], ignore_index=True).sort_values(["parent", "line_number", "source_id"], ignore_index=True)


def allocate(totals: pd.Series, weights: pd.Series, groups: pd.Series) -> pd.Series:
    """Each group's total (repeated on its rows) shared by weight to the cent.

    Every row gets the floor of its exact share in cents; the cents still missing go to the
    rows with the largest remainders (ties to the earlier row), so a group's shares add up to
    its total exactly and a rerun gives the same split.
    """
    frame = pd.DataFrame({"group": groups.to_numpy(), "cents": np.round(totals.to_numpy(dtype=float) * 100),
                          "weight": weights.to_numpy(dtype=float), "position": np.arange(len(totals))})
    exact = frame["cents"] * frame["weight"] / frame.groupby("group")["weight"].transform("sum")
    floor = np.floor(exact)
    missing = frame["cents"] - floor.groupby(frame["group"]).transform("sum")
    frame["fraction"] = exact - floor
    order = frame.sort_values(["group", "fraction", "position"], ascending=[True, False, True])
    rank = order.groupby("group").cumcount().reindex(frame.index)
    return pd.Series(((floor + (rank < missing)) / 100).to_numpy(), index=totals.index)


def expanded_bundles(bundles: pd.DataFrame, member_lines: pd.DataFrame, list_prices: pd.DataFrame, names: dict[str, object],
                     links: Links, outcomes: Outcomes) -> pd.DataFrame:
    """Member lines for every bundle line, the bundle's amount and discount shared over them by list price."""
    parents = pd.DataFrame({
        "parent": bundles["source_id"].to_numpy(dtype=object), "deal": bundles["deal"].to_numpy(dtype=object),
        "bundle_product": bundles["product"].to_numpy(dtype=object), "currency": bundles["currency"].to_numpy(dtype=object),
        "total": np.where(np.isnan(bundles["base"]), bundles["price"].fillna(0.0) * bundles["quantity"].fillna(1.0), bundles["base"]),
        "bundle_discount": bundles["discount"].to_numpy(), "bundle_tax": bundles["tax"].to_numpy(),
    })
    rows = member_lines.merge(parents, on="parent")
    product = links.resolve("product", rows["product"])
    lost = (product["object"] != "products").to_numpy()
    outcomes.reject(rows.loc[lost, "source_id"], "*", rows.loc[lost, "product"], "its product is not migrated", "line:productid")
    rows = rows[~lost].assign(product=product["source_id"][~lost].to_numpy())
    emptied = parents[~common.is_in(parents["parent"], rows["parent"]) & common.is_in(parents["parent"], member_lines["parent"])]
    outcomes.reject(emptied["parent"], "*", emptied["bundle_product"], "bundle line whose members are not migrated", "bundle_line_expanded")
    if not len(rows):
        return pd.DataFrame(columns=COLUMNS)

    rows = rows.merge(list_prices.rename(columns={"product": "product_key"}), left_on=["product", "currency"], right_on=["product_key", "currency"],
                      how="left").sort_values(["parent", "line_number", "source_id"], ignore_index=True)
    weight = rows["list_price"] * rows["quantity"]
    priced = (weight > 0).groupby(rows["parent"]).transform("all")
    weight = weight.where(priced, rows["quantity"].where(rows["quantity"] > 0, 1.0))
    amount = allocate(rows["total"], weight, rows["parent"])
    discount = allocate(rows["bundle_discount"], weight, rows["parent"])
    taxable = rows["total"] - rows["bundle_discount"]
    impossible = (rows["bundle_tax"] > 0) & (taxable <= 0)
    first = ~rows["parent"].duplicated()
    outcomes.reject(rows.loc[impossible & first, "parent"], "tax", rows.loc[impossible & first, "bundle_tax"],
                    "tax on a zero or negative amount cannot be a rate", "tax:tax")
    rate = (rows["bundle_tax"] / taxable.where(taxable > 0) * 100).where(~impossible, 0.0).fillna(0.0)
    currency = rows["currency"].map(lambda code: f" {code}" if isinstance(code, str) else "")
    comments = [f"Part of bundle '{names.get(str(bundle), 'bundle')}' (line {parent}): {share:.2f} of the bundle's {total:.2f}{code}, "
                "shared by list price"
                for bundle, parent, share, total, code in zip(rows["bundle_product"], rows["parent"], amount, rows["total"], currency, strict=True)]
    outcomes.merge(rows.loc[first, "parent"], OBJECT, rows.loc[first, "source_id"], "bundle_line_expanded")
    return line_rows(rows, rows["product"], amount / rows["quantity"], rows["quantity"], discount, rate, pd.Series(comments))
