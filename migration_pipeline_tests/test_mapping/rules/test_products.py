"""Products with a price per currency; bundles flattened into their members; deal lines with bundles and write-ins."""

from __future__ import annotations

import pandas as pd
import pytest

from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.deal_products import DEAL, PRODUCT, allocate, transform_deal_products
from migration_pipeline.mapping.rules.deals import transform_deals
from migration_pipeline.mapping.rules.products import transform_products
from migration_pipeline_tests.test_mapping.rules.frames import EUR, USD, context, currencies, rejects_of, row, table


def catalogue() -> dict[str, object]:
    products = table(
        "products",
        {"productid": "bundle", "name": "Suite", "productnumber": "PRD-1", "price": 170.0, "productstructure": 3, "_transactioncurrencyid_value": USD},
        {"productid": "crm", "name": "CRM", "productnumber": "PRD-2", "price": 100.0, "standardcost": 40.0, "productstructure": 1,
         "_transactioncurrencyid_value": USD, "statecode__label": "Active"},
        {"productid": "desk", "name": "Helpdesk", "productnumber": "PRD-3", "price": 50.0, "productstructure": 1, "_transactioncurrencyid_value": USD},
        {"productid": "family", "name": "All software", "productstructure": 2},
    )
    pricelevels = table("pricelevels",
                        {"pricelevelid": "usd-old", "_transactioncurrencyid_value": USD, "begindate": "2018-01-01", "statecode": 1},
                        {"pricelevelid": "usd", "_transactioncurrencyid_value": USD, "begindate": "2019-01-01", "statecode": 0},
                        {"pricelevelid": "eur", "_transactioncurrencyid_value": EUR, "begindate": "2019-01-01", "statecode": 0})
    items = table("productpricelevels",
                  {"productpricelevelid": "i-crm-usd-old", "_pricelevelid_value": "usd-old", "_productid_value": "crm", "amount": 90.0},
                  {"productpricelevelid": "i-crm-usd", "_pricelevelid_value": "usd", "_productid_value": "crm", "amount": 100.0},
                  {"productpricelevelid": "i-crm-eur", "_pricelevelid_value": "eur", "_productid_value": "crm", "amount": 80.0},
                  {"productpricelevelid": "i-desk-eur", "_pricelevelid_value": "eur", "_productid_value": "desk", "amount": 40.0},
                  {"productpricelevelid": "i-family", "_pricelevelid_value": "usd", "_productid_value": "family", "amount": 1.0})
    associations = table("productassociations",
                         {"productassociationid": "a-crm", "_productid_value": "bundle", "_associatedproduct_value": "crm", "quantity": 1.0,
                          "productisrequired": 1},
                         {"productassociationid": "a-desk", "_productid_value": "bundle", "_associatedproduct_value": "desk", "quantity": 2.0,
                          "productisrequired": 0})
    return {"products": products, "productpricelevels": items, "pricelevels": pricelevels, "productassociations": associations,
            "transactioncurrencies": currencies()}


def test_prices_per_currency_the_active_list_winning() -> None:
    stage = transform_products(**catalogue(), context=context())
    assert row(stage, "crm")["prices"] == [{"currency": "EUR", "price": 80.0}, {"currency": "USD", "price": 100.0, "cost": 40.0}]
    assert row(stage, "desk")["prices"] == [{"currency": "EUR", "price": 40.0}, {"currency": "USD", "price": 50.0}]  # its own list price
    items = stage.merged[stage.merged["object"] == "productpricelevels"]
    assert sorted(items["source_id"]) == ["i-crm-eur", "i-crm-usd", "i-desk-eur"]
    assert rejects_of(stage, "i-crm-usd-old") == [("*", "price_per_currency")]
    assert rejects_of(stage, "i-family") == [("*", "price_per_currency")]
    assert rejects_of(stage, "family") == [("*", "product_family")]
    assert (row(stage, "crm")["code"], row(stage, "crm")["custom:Dynamics Status"]) == ("PRD-2", "Active")


def test_a_bundle_is_flattened_into_its_members_with_the_pricing_note() -> None:
    stage = transform_products(**catalogue(), context=context())
    assert sorted(stage.staged["source_id"]) == ["crm", "desk"]
    merged = stage.merged.set_index("source_id")
    assert (merged.loc["bundle", "into_source_id"], merged.loc["bundle", "rule"]) == ("crm", "bundle_flattened")
    assert merged.loc["a-desk", "into_source_id"] == "desk" and merged.loc["a-desk", "rule"] == "bundle_membership"
    assert row(stage, "desk")["custom:Bundle Pricing"] == "Part of bundle 'Suite' (PRD-1): 2 per bundle, optional; bundle price 170.00 USD"


def deal_setup() -> tuple[dict[str, object], Links]:
    raw = catalogue()
    links = Links()
    links.add("product", transform_products(**raw, context=context()))
    links.add("opportunity", transform_deals(table("opportunities", {"opportunityid": "deal", "name": "Deal", "statecode": 0}),
                                             currencies(), context(), links))
    return raw, links


def line(line_id: str, **fields: object) -> dict[str, object]:
    return {"opportunityproductid": line_id, "_opportunityid_value": "deal", "quantity": 1.0, "_transactioncurrencyid_value": USD, **fields}


def run_lines(*lines: dict[str, object]) -> object:
    raw, links = deal_setup()
    return transform_deal_products(table("opportunityproducts", *lines), raw["products"], raw["productassociations"], raw["productpricelevels"],
                                   raw["pricelevels"], raw["transactioncurrencies"], context(), links)


def test_a_plain_line_carries_price_quantity_discount_and_tax_rate() -> None:
    stage = run_lines(line("l1", _productid_value="crm", quantity=3.0, priceperunit=100.0, baseamount=300.0, manualdiscountamount=50.0, tax=20.0))
    staged = row(stage, "l1")
    assert (staged[DEAL], staged[PRODUCT], staged["item_price"], staged["quantity"], staged["discount"], staged["discount_type"]) == (
        "deal", "crm", 100.0, 3.0, 50.0, "amount")
    assert (staged["tax"], staged["tax_method"]) == (8.0, "exclusive")  # 20 on 250


def test_bundle_lines_expand_to_member_lines_sharing_the_price_exactly() -> None:
    with_children = [
        line("parent", _productid_value="bundle", quantity=1.0, priceperunit=170.0, baseamount=170.0, manualdiscountamount=17.0),
        line("child-crm", _productid_value="crm", _parentbundleidref_value="parent", priceperunit=0.0, lineitemnumber=2),
        line("child-desk", _productid_value="desk", _parentbundleidref_value="parent", quantity=2.0, priceperunit=0.0, lineitemnumber=3),
    ]
    stage = run_lines(*with_children)
    crm, desk = row(stage, "child-crm"), row(stage, "child-desk")
    # List prices 100 x 1 and 50 x 2: the 170 and the 17 discount split half and half.
    assert (crm["item_price"] * crm["quantity"], desk["item_price"] * desk["quantity"]) == (85.0, 85.0)
    assert (crm["discount"], desk["discount"]) == (8.5, 8.5)
    assert "Part of bundle 'Suite' (line parent)" in crm["comments"]
    assert stage.merged[["source_id", "into_source_id", "rule"]].to_dict("records") == [
        {"source_id": "parent", "into_source_id": "child-crm", "rule": "bundle_line_expanded"}]
    assert "parent" not in set(stage.staged["source_id"])


def test_a_bundle_line_without_member_lines_is_expanded_from_the_bundle() -> None:
    stage = run_lines(line("solo", _productid_value="bundle", quantity=2.0, priceperunit=170.0, baseamount=340.0))
    assert sorted(stage.staged["source_id"]) == ["solo/crm", "solo/desk"]
    desk = row(stage, "solo/desk")
    assert (desk[PRODUCT], desk["quantity"], desk["item_price"] * desk["quantity"]) == ("desk", 4.0, 170.0)


def test_write_in_lines_get_one_product_per_distinct_name() -> None:
    stage = run_lines(line("w1", productdescription="Travel  expenses", priceperunit=10.0, baseamount=10.0),
                      line("w2", productdescription="travel expenses", priceperunit=12.0, baseamount=12.0),
                      line("gone", _productid_value="retired"), line("elsewhere", _opportunityid_value="nope", _productid_value="crm"))
    assert row(stage, "w1")[PRODUCT] == row(stage, "w2")[PRODUCT] == "write-in:travel expenses"
    made = stage.extra["write_in_products"].to_dict("records")
    assert made == [{"source_id": "write-in:travel expenses", "name": "Travel  expenses", "custom:Dynamics ID": "write-in:travel expenses",
                     "custom:Write-In Product": "yes"}]
    assert sorted(stage.extra["write_ins"]["source_id"]) == ["w1", "w2"]
    assert rejects_of(stage, "gone") == [("*", "line:productid")]
    assert rejects_of(stage, "elsewhere") == [("*", "line:opportunityid")]


@pytest.mark.parametrize(("total", "weights", "shares"), [
    (10.0, [1.0, 1.0, 1.0], [3.34, 3.33, 3.33]),
    (100.0, [3.0, 1.0], [75.0, 25.0]),
    (0.01, [1.0, 1.0], [0.01, 0.0]),
    (0.0, [1.0, 2.0], [0.0, 0.0]),
])
def test_allocation_adds_up_to_the_cent(total: float, weights: list[float], shares: list[float]) -> None:
    allocated = allocate(pd.Series([total] * len(weights)), pd.Series(weights), pd.Series(["bundle"] * len(weights)))
    assert allocated.tolist() == shares
    assert round(allocated.sum(), 2) == total


def test_allocation_is_per_group() -> None:
    allocated = allocate(pd.Series([1.0, 1.0, 5.0]), pd.Series([1.0, 2.0, 7.0]), pd.Series(["a", "a", "b"]))
    assert allocated.tolist() == [0.33, 0.67, 5.0]
