"""Entity-set reads over real HTTP: query options, paging, annotations, single rows, errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from migration_pipeline_tests.test_sandbox.dataverse_fixture import NOTE_BODY, NOTE_IDS, USD, Served, make_dataset, served

DATASET = make_dataset(accounts=60)
ACCOUNTS = DATASET.tables["accounts"]
ALL = 'odata.include-annotations="*"'


@pytest.fixture(scope="module")
def dv() -> Iterator[Served]:
    with served(make_dataset(accounts=60)) as running:
        yield running


def _error(response, status: int, code: str = "0x80060888") -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error["message"]


def test_select_returns_selected_columns_key_and_etag(dv: Served) -> None:
    response = dv.get("accounts", params={"$select": "name,accountnumber", "$top": "3"})
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["@odata.context"] == f"{dv.url}/api/data/v9.2/$metadata#accounts(name,accountnumber)"
    row = body["value"][0]
    assert set(row) == {"@odata.etag", "name", "accountnumber", "accountid"}
    version = ACCOUNTS.set_index("accountid").loc[row["accountid"], "versionnumber"]
    assert row["@odata.etag"] == f'W/"{version}"'


def test_without_select_every_column_comes_back_typed(dv: Served) -> None:
    row = dv.get("accounts", params={"$top": "1", "$filter": "revenue ne null and new_tier ne null"}).json()["value"][0]
    expected = {c for c in ACCOUNTS.columns if "@" not in c}
    assert expected <= set(row)
    assert isinstance(row["numberofemployees"], int) and isinstance(row["revenue"], float)
    assert isinstance(row["donotemail"], bool) and row["address2_city"] is None


def test_money_brings_its_currency(dv: Served) -> None:
    row = dv.get("accounts", params={"$select": "revenue", "$top": "1"}).json()["value"][0]
    assert set(row) == {"@odata.etag", "revenue", "_transactioncurrencyid_value", "accountid"}


def test_unknown_select_property_is_named_in_the_400(dv: Served) -> None:
    message = _error(dv.get("accounts", params={"$select": "name,nosuchcolumn"}), 400)
    assert "nosuchcolumn" in message and "Microsoft.Dynamics.CRM.account" in message
    # a lookup is read through _x_value, not its navigation-property name
    assert "parentaccountid" in _error(dv.get("accounts", params={"$select": "parentaccountid"}), 400)


@pytest.mark.parametrize(
    ("filter_text", "predicate"),
    [
        ("numberofemployees gt 25000", lambda f: f["numberofemployees"] > 25000),
        ("address1_city eq 'o''fallon'", lambda f: f["address1_city"] == "O'Fallon"),
        ("accountnumber eq null", lambda f: f["accountnumber"].isna()),
        ("revenue ge 1000000 and (industrycode eq 1 or industrycode eq 33)", lambda f: (f["revenue"] >= 1e6) & f["industrycode"].isin([1, 33])),
        ("not startswith(name,'Account 00001')", lambda f: ~f["name"].str.startswith("Account 00001")),
        ("contains(emailaddress1,'@A1')", lambda f: f["emailaddress1"].str.contains("@a1")),
        ("endswith(name,'7')", lambda f: f["name"].str.endswith("7")),
        ("modifiedon ge 2024-06-01T00:00:00Z", lambda f: f["modifiedon"] >= "2024-06-01T00:00:00Z"),
        ("new_founded lt 1960-01-01", lambda f: f["new_founded"] < "1960-01-01"),
        ("donotemail eq true", lambda f: f["donotemail"]),
        (f"_transactioncurrencyid_value eq {USD}", lambda f: f["_transactioncurrencyid_value"] == USD),
        ("_parentaccountid_value ne null", lambda f: f["_parentaccountid_value"].notna()),
    ],
)
def test_filter_matches_pandas(dv: Served, filter_text: str, predicate) -> None:  # type: ignore[no-untyped-def]
    rows, _ = dv.all_pages("accounts", params={"$select": "name", "$filter": filter_text})
    expected = set(ACCOUNTS.loc[predicate(ACCOUNTS).fillna(False).astype(bool), "accountid"])
    assert {row["accountid"] for row in rows} == expected
    assert expected, "the case must select something"


@pytest.mark.parametrize(
    "filter_text",
    ["name eq 5", f"_transactioncurrencyid_value eq '{USD}'", "nosuch eq 1", "revenue eq", "modifiedon gt '2024-01-01'"],
)
def test_bad_filters_are_400(dv: Served, filter_text: str) -> None:
    _error(dv.get("accounts", params={"$filter": filter_text}), 400)


def test_orderby_multiple_keys_with_primary_key_tiebreak(dv: Served) -> None:
    rows, _ = dv.all_pages("accounts", "odata.maxpagesize=7", params={"$select": "industrycode,name", "$orderby": "industrycode desc,address1_city"})
    frame = ACCOUNTS.assign(city=ACCOUNTS["address1_city"].str.lower())
    expected = frame.sort_values(["industrycode", "city", "accountid"], ascending=[False, True, True])["accountid"].tolist()
    assert [row["accountid"] for row in rows] == expected


def test_default_order_is_primary_key(dv: Served) -> None:
    rows, _ = dv.all_pages("accounts", "odata.maxpagesize=13", params={"$select": "name"})
    assert [row["accountid"] for row in rows] == sorted(ACCOUNTS["accountid"])


def test_orderby_nulls_sort_first_ascending(dv: Served) -> None:
    rows = dv.get("accounts", params={"$select": "accountnumber", "$orderby": "accountnumber asc", "$top": "20"}).json()["value"]
    nulls = int(ACCOUNTS["accountnumber"].isna().sum())
    assert all(row["accountnumber"] is None for row in rows[:nulls]) and rows[nulls]["accountnumber"] is not None


def test_top_caps_rows_and_has_no_next_link(dv: Served) -> None:
    body = dv.get("accounts", params={"$top": "5", "$select": "name"}).json()
    assert len(body["value"]) == 5 and "@odata.nextLink" not in body


def test_top_is_ignored_under_maxpagesize(dv: Served) -> None:
    body = dv.get("accounts", "odata.maxpagesize=10", params={"$top": "5", "$select": "name"}).json()
    assert len(body["value"]) == 10 and "@odata.nextLink" in body


def test_skip_and_unknown_options_are_rejected(dv: Served) -> None:
    assert "$skip" in _error(dv.get("accounts", params={"$skip": "10"}), 400)
    _error(dv.get("accounts", params={"$apply": "groupby((name))"}), 400)
    _error(dv.get("accounts", params={"$top": "-1"}), 400)
    assert dv.get("accounts", params={"$top": "1", "custom": "ignored"}).status_code == 200


def test_count_true_and_cap(dv: Served) -> None:
    body = dv.get("accounts", params={"$count": "true", "$filter": "industrycode eq 1", "$select": "name", "$top": "2"}).json()
    assert body["@odata.count"] == int((ACCOUNTS["industrycode"] == 1).sum())
    assert "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded" not in body
    with served(make_dataset(accounts=5200, contacts=3), None) as big:
        body = big.get("accounts", ALL, params={"$count": "true", "$select": "name"}).json()
        assert body["@odata.count"] == 5000
        assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True
        assert big.get("accounts/$count").text == "5000"


def test_dollar_count_segment_returns_plain_number(dv: Served) -> None:
    response = dv.get("accounts/$count", params={"$filter": "statecode eq 1"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert int(response.text) == int((ACCOUNTS["statecode"] == 1).sum())


def test_paging_echoes_preference_and_follows_next_link_without_loss(dv: Served) -> None:
    first = dv.get("accounts", "odata.maxpagesize=25", params={"$select": "name"})
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=25"
    link = first.json()["@odata.nextLink"]
    query = parse_qs(urlsplit(link).query)
    assert query["$select"] == ["name"] and query["$skiptoken"][0].startswith('<cookie pagenumber="2" pagingcookie="')
    rows, last = dv.all_pages("accounts", "odata.maxpagesize=25", params={"$select": "name"})
    assert len(rows) == len(ACCOUNTS) == len({row["accountid"] for row in rows})
    assert "@odata.nextLink" not in last


def test_maxpagesize_above_the_maximum_is_clamped(dv: Served) -> None:
    response = dv.get("accounts", "odata.maxpagesize=9000", params={"$select": "name"})
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=5000"


def test_tampered_skiptoken_is_400(dv: Served) -> None:
    link = dv.get("accounts", "odata.maxpagesize=5", params={"$select": "name"}).json()["@odata.nextLink"]
    _error(dv.get(link.replace("%3Ccookie", "%3Cbiscuit"), "odata.maxpagesize=5"), 400)
    # the same token under a different $orderby does not silently resume somewhere else
    token = parse_qs(urlsplit(link).query)["$skiptoken"][0]
    _error(dv.get("accounts", "odata.maxpagesize=5", params={"$orderby": "name", "$skiptoken": token}), 400)


def test_rows_inserted_and_changed_mid_paging_never_duplicate_or_lose_rows() -> None:
    with served(make_dataset(accounts=200)) as dv:
        params = {"$select": "name,modifiedon", "$orderby": "modifiedon asc"}
        response = dv.get("accounts", "odata.maxpagesize=30", params=params)
        seen: list[str] = []
        page = 0
        while True:
            body = response.json()
            seen += [row["accountid"] for row in body["value"]]
            page += 1
            if page == 2:  # between pages: insert rows, and move one unseen row ahead of the cursor
                for index in range(5):
                    dv.simulator.create_row("accounts", {"name": f"Late {index}"})
                unseen = next(key for key in current_ids(dv) if key not in seen)
                dv.simulator.update_row("accounts", unseen, {"name": "Touched"})
            if "@odata.nextLink" not in body:
                break
            response = dv.get(body["@odata.nextLink"], "odata.maxpagesize=30")
        original = set(make_dataset(accounts=200).tables["accounts"]["accountid"])
        assert len(seen) == len(set(seen)), "no row is returned twice"
        assert original <= set(seen), "no pre-existing row is lost"


def current_ids(dv: Served) -> list[str]:
    return dv.simulator.store.table("accounts").frame["accountid"].tolist()


def test_annotations_only_when_asked(dv: Served) -> None:
    params = {"$select": "name,industrycode,revenue,_ownerid_value,_parentaccountid_value,donotemail,new_founded,lastusedincampaign,numberofemployees", "$filter": "_parentaccountid_value ne null and revenue ne null and lastusedincampaign ne null", "$top": "1"}
    plain = dv.get("accounts", params=params).json()["value"][0]
    assert not [key for key in plain if "@" in key and key != "@odata.etag"]
    response = dv.get("accounts", ALL, params=params)
    assert response.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    row = response.json()["value"][0]
    source = ACCOUNTS.set_index("accountid").loc[row["accountid"]]
    labels = {1: "Accounting", 5: "Building Supply Retail", 33: "Wholesale"}
    formatted = "@OData.Community.Display.V1.FormattedValue"
    assert row["industrycode" + formatted] == labels[row["industrycode"]]
    assert row["revenue" + formatted].startswith("$") or row["revenue" + formatted].startswith("€")
    owner_kind = source["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"]
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == owner_kind
    assert row["_ownerid_value" + formatted] in {"Ada Admin", "Bob Seller", "Sales Team"}
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "ownerid"
    parent_name = ACCOUNTS.set_index("accountid").loc[row["_parentaccountid_value"], "name"]
    assert row["_parentaccountid_value" + formatted] == parent_name
    assert row["_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert row["donotemail" + formatted] in {"Allow", "Do Not Allow"}
    year, month, day = row["new_founded"].split("-")
    assert row["new_founded" + formatted] == f"{int(month)}/{int(day)}/{year}"
    assert row["lastusedincampaign" + formatted].endswith(("AM", "PM"))
    assert row["numberofemployees" + formatted] == f"{row['numberofemployees']:,}"


def test_annotation_list_picks_only_named_terms(dv: Served) -> None:
    prefer = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
    row = dv.get("contacts", prefer, params={"$select": "_parentcustomerid_value", "$filter": "_parentcustomerid_value ne null", "$top": "1"}).json()["value"][0]
    assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] in {"account", "contact"}
    assert not any("FormattedValue" in key or "associatednavigationproperty" in key for key in row)


def test_polymorphic_customer_navigation_property(dv: Served) -> None:
    rows, _ = dv.all_pages("contacts", ALL, params={"$select": "_parentcustomerid_value", "$filter": "_parentcustomerid_value ne null"})
    navigation = {row["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] for row in rows}
    assert navigation == {"parentcustomerid_account", "parentcustomerid_contact"}
    nulls = dv.get("contacts", ALL, params={"$filter": "_parentcustomerid_value eq null", "$top": "1"}).json()["value"][0]
    assert "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue" not in nulls


def test_single_row_and_not_found(dv: Served) -> None:
    key = ACCOUNTS["accountid"].iloc[3]
    response = dv.get(f"accounts({key})", params={"$select": "name"})
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#accounts(name)/$entity")
    assert body["name"] == ACCOUNTS["name"].iloc[3] and body["accountid"] == key
    assert dv.get(f"accounts({key.upper()})").status_code == 200
    missing = "00000000-0000-0000-0000-00000000beef"
    assert "Does Not Exist" in _error(dv.get(f"accounts({missing})"), 404, "0x80040217")
    assert dv.get(f"accounts({key})/name").json()["value"] == ACCOUNTS["name"].iloc[3]


def test_document_body_rules(dv: Served) -> None:
    rows = dv.get("annotations").json()["value"]
    assert rows and all("documentbody" not in row for row in rows)
    selected = {row["annotationid"]: row for row in dv.get("annotations", params={"$select": "filename,documentbody"}).json()["value"]}
    assert base64.b64decode(selected[NOTE_IDS[1]]["documentbody"]) == NOTE_BODY
    assert selected[NOTE_IDS[0]]["documentbody"] is None
    value = dv.get(f"annotations({NOTE_IDS[1]})/documentbody/$value")
    assert value.status_code == 200 and value.headers["content-type"].startswith("text/plain")
    assert base64.b64decode(value.text) == NOTE_BODY
    assert dv.get(f"annotations({NOTE_IDS[0]})/documentbody/$value").status_code == 204


def test_unreadable_table_is_403_privilege_denied(dv: Served) -> None:
    message = _error(dv.get("workflows"), 403, "0x80040220")
    assert "is missing prvReadWorkflow privilege" in message and dv.options.application_user_id in message


def test_unknown_entity_set_is_404(dv: Served) -> None:
    assert "accountz" in _error(dv.get("accountz"), 404, "0x8006088a")


def test_odata_headers(dv: Served) -> None:
    _error(dv.get("accounts", headers={"OData-MaxVersion": "3.0"}), 400)
    assert dv.get("accounts", headers={"Accept": "application/atom+xml"}).status_code == 406
    assert dv.get("accounts", params={"$top": "1"}, headers={"Accept": "*/*"}).status_code == 200


def test_organization_settings_and_service_document(dv: Served) -> None:
    org = dv.get("organizations", params={"$select": "maxuploadfilesize,expirechangetrackingindays,_basecurrencyid_value"}).json()["value"][0]
    assert org["maxuploadfilesize"] == 5_242_880 and org["expirechangetrackingindays"] == 30 and org["_basecurrencyid_value"] == USD
    names = {item["name"] for item in dv.client.get("/api/data/v9.2/", headers={"Accept": "application/json"}).json()["value"]}
    assert {"accounts", "contacts", "annotations", "organizations"} <= names
