"""The Pipedrive simulator through real HTTP, every success checked against the official specs.

Each 2xx exchange made by the `api` client is validated with openapi-core against the
packaged v2 spec (or v1 for v1-only paths), with the servers pointed at the loopback URL.
Error cases check the simulator's strictness: what the real API refuses, it refuses.
"""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.response.exceptions import InvalidData
from werkzeug.datastructures import Headers, ImmutableMultiDict

from migration_pipeline.sandbox.dataset import PipedrivePlan
from migration_pipeline.sandbox.pipedrive import PipedriveOptions, create_app
from migration_pipeline.sandbox.pipedrive.minimal import ADMIN_TOKEN, SECOND_TOKEN, minimal_seed
from migration_pipeline.sandbox.pipedrive.spec import SPEC_DIR, load_spec
from migration_pipeline.sandbox.serve import LoopbackServer

SHARED_SPECS = Path("/work/shared/specs")


class _Request:
    """An httpx request in openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlparse(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "application/json")
        self.parameters = RequestParameters(query=ImmutableMultiDict(parse_qs(url.query)),
                                            header=Headers(dict(request.headers)), cookie=ImmutableMultiDict())


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")
        self.data = response.content


def _openapi(version: str, url: str) -> OpenAPI:
    document = dict(load_spec(version))  # shallow copy: only `servers` is replaced
    prefixes = ["/api/v2"] if version == "v2" else ["/api/v1", "/v1"]
    document["servers"] = [{"url": url + prefix} for prefix in prefixes]
    return OpenAPI.from_dict(document)


class SpecCheckedClient(httpx.Client):
    """An httpx client that validates every 2xx request/response pair against the spec."""

    def __init__(self, base_url: str, specs: dict[str, OpenAPI], token: str = ADMIN_TOKEN) -> None:
        super().__init__(base_url=base_url, headers={"x-api-token": token}, timeout=10)
        self.specs = specs
        self.validated = 0

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        request.read()  # multipart bodies stream; keep them for the validator
        response = super().send(request, **kwargs)
        response.read()
        if 200 <= response.status_code < 300 and response.headers.get("content-type") == "application/json":
            spec = self.specs["v2" if request.url.path.startswith("/api/v2/") else "v1"]
            if not request.headers.get("content-type", "").startswith("multipart/"):
                # openapi-core does not cast multipart text parts to the schema's integers.
                spec.validate_request(_Request(request))
            spec.validate_response(_Request(request), _Response(response))
            self.validated += 1
        return response


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    plan = PipedrivePlan(daily_token_budget=10_000_000, burst_per_2s=10_000, search_burst_per_2s=10_000,
                         custom_field_cap=40, deals_and_leads_cap=10_000, max_file_size=1024)
    with LoopbackServer(create_app(minimal_seed(plan), PipedriveOptions(random_seed=7))) as running:
        yield running


@pytest.fixture(scope="module")
def specs(server: LoopbackServer) -> dict[str, OpenAPI]:
    return {"v1": _openapi("v1", server.url), "v2": _openapi("v2", server.url)}


@pytest.fixture(scope="module")
def api(server: LoopbackServer, specs: dict[str, OpenAPI]) -> Iterator[SpecCheckedClient]:
    with SpecCheckedClient(server.url, specs) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def refused(response: httpx.Response, status: int = 400, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None and body["additional_data"] is None
    assert contains in body["error"], body["error"]
    return body


def new_org(api: httpx.Client, name: str = "Contoso", **extra: Any) -> dict[str, Any]:
    return ok(api.post("/api/v2/organizations", json={"name": name, **extra}))


def new_person(api: httpx.Client, name: str = "Ada Lovelace", **extra: Any) -> dict[str, Any]:
    return ok(api.post("/api/v2/persons", json={"name": name, **extra}))


def new_field(api: httpx.Client, segment: str, field_type: str, **extra: Any) -> dict[str, Any]:
    return ok(api.post(f"/api/v2/{segment}", json={"field_name": f"F {field_type}", "field_type": field_type, **extra}))


# -- packaging and auth ----------------------------------------------------------------------
@pytest.mark.skipif(not SHARED_SPECS.exists(), reason="the shared specs folder is not on this machine")
def test_packaged_specs_equal_the_official_copies() -> None:
    for name in ("pipedrive-openapi-v1.yaml", "pipedrive-openapi-v2.yaml"):
        assert filecmp.cmp(SPEC_DIR / name, SHARED_SPECS / name, shallow=False)


def test_unknown_or_missing_token_is_unauthorized(server: LoopbackServer) -> None:
    for headers in ({}, {"x-api-token": "wrong"}):
        response = httpx.get(f"{server.url}/api/v2/deals", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized access"


def test_legacy_query_token_only_on_v1(server: LoopbackServer) -> None:
    assert httpx.get(f"{server.url}/v1/users/me", params={"api_token": ADMIN_TOKEN}).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/users/me", params={"api_token": ADMIN_TOKEN}).status_code == 200
    assert httpx.get(f"{server.url}/api/v2/deals", params={"api_token": ADMIN_TOKEN}).status_code == 401


# -- organizations, persons: CRUD, soft deletes, paging --------------------------------------
def test_organization_crud_and_soft_delete(api: SpecCheckedClient) -> None:
    org = new_org(api, "Soft Delete Ltd", address={"value": "1 Main St, Oslo", "locality": "Oslo"}, employee_count=5)
    assert org["address"]["locality"] == "Oslo" and org["is_deleted"] is False
    patched = ok(api.patch(f"/api/v2/organizations/{org['id']}", json={"website": "https://x.example"}))
    assert patched["website"] == "https://x.example" and patched["name"] == "Soft Delete Ltd"
    assert ok(api.delete(f"/api/v2/organizations/{org['id']}")) == {"id": org["id"]}
    assert ok(api.get(f"/api/v2/organizations/{org['id']}"))["is_deleted"] is True
    listed = ok(api.get("/api/v2/organizations", params={"limit": 500}))
    assert org["id"] not in {o["id"] for o in listed}
    refused(api.patch(f"/api/v2/organizations/{org['id']}", json={"name": "again"}), 404)
    refused(api.post("/api/v2/persons", json={"name": "Orphan", "org_id": org["id"]}), 400, "does not exist")


def test_cursor_paging_walks_every_record_once(api: SpecCheckedClient) -> None:
    created = {new_org(api, f"Paged {i}")["id"] for i in range(7)}
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 3, "ids": ",".join(map(str, created))}
    while True:
        response = api.get("/api/v2/organizations", params=params)
        seen += [o["id"] for o in ok(response)]
        cursor = response.json().get("additional_data", {}).get("next_cursor")
        if not cursor:
            break
        params["cursor"] = cursor
    assert seen == sorted(created)
    refused(api.get("/api/v2/organizations", params={"limit": 501}), 400, "limit")
    refused(api.get("/api/v2/organizations", params={"cursor": "garbage!"}), 400, "cursor")
    desc = ok(api.get("/api/v2/organizations", params={"sort_by": "id", "sort_direction": "desc", "limit": 2}))
    assert desc[0]["id"] > desc[1]["id"]


def test_updated_since_takes_rfc3339_only(api: SpecCheckedClient) -> None:
    ok(api.get("/api/v2/persons", params={"updated_since": "2020-01-01T00:00:00Z"}))
    refused(api.get("/api/v2/persons", params={"updated_since": "2020-01-01 00:00:00"}), 400, "updated_since")
    refused(api.get("/api/v2/pipelines", params={"updated_since": "2020-01-01T00:00:00Z"}), 400, "not allowed")


def test_person_contacts_and_primary_rule(api: SpecCheckedClient) -> None:
    org = new_org(api)
    person = new_person(api, "Grace Hopper", org_id=org["id"],
                        emails=[{"value": "g@x.example", "label": "work"}, {"value": "g2@x.example", "label": "home"}],
                        phones=[{"value": "+47 1", "primary": True, "label": "mobile"}])
    assert person["first_name"] == "Grace" and person["last_name"] == "Hopper"
    assert [e["primary"] for e in person["emails"]] == [True, False]
    two_primaries = [{"value": "a@x.example", "primary": True}, {"value": "b@x.example", "primary": True}]
    refused(api.post("/api/v2/persons", json={"name": "Two", "emails": two_primaries}), 400, "primary")
    refused(api.post("/api/v2/persons", json={"emails": [{"value": "a@x.example"}]}), 400, "name")
    assert person["id"] in {p["id"] for p in ok(api.get("/api/v2/persons", params={"org_id": org["id"]}))}


# -- strict validation -----------------------------------------------------------------------
@pytest.mark.parametrize(("body", "message"), [
    ({"title": "x", "colour": "red"}, "Validation failed: colour: Parameter 'colour' is not allowed for this request"),
    ({"title": "x", "value": "100"}, "value: Expected 'number'"),
    ({"title": "x", "is_archived": 1}, "is_archived: Expected 'boolean'"),
    ({"title": "x", "org_id": "1"}, "org_id: Expected 'number'"),
    ({"value": 5}, "title"),
    ({"title": "x", "owner_id": 3}, "not active"),
    ({"title": "x", "owner_id": 99}, "not active"),
    ({"title": "x", "stage_id": 99}, "Stage with id 99"),
    ({"title": "x", "pipeline_id": 1, "stage_id": 1, "currency": "XXX"}, "Currency"),
    ({"title": "x", "status": "won", "lost_reason": "price"}, "lost_reason"),
    ({"title": "x", "status": "won", "won_time": "2025-06-30 10:00:00"}, "RFC 3339"),
    ({"title": "x", "expected_close_date": "30.06.2025"}, "date"),
])
def test_deal_bodies_are_validated_strictly(api: SpecCheckedClient, body: dict[str, Any], message: str) -> None:
    body_json = refused(api.post("/api/v2/deals", json=body), 400, message)
    assert body_json["code"] in ("ERR_SCHEMA_VALIDATION_FAILED", "ERR_BAD_REQUEST")


def test_top_level_custom_field_key_is_refused(api: SpecCheckedClient) -> None:
    code = new_field(api, "dealFields", "varchar")["field_code"]
    body = refused(api.post("/api/v2/deals", json={"title": "x", code: "v"}), 400,
                   f"Validation failed: {code}: Parameter '{code}' is not allowed for this request")
    assert body["code"] == "ERR_SCHEMA_VALIDATION_FAILED"


def test_stage_must_belong_to_the_pipeline(api: SpecCheckedClient) -> None:
    other = ok(api.post("/api/v2/pipelines", json={"name": "Other"}))
    stage = ok(api.post("/api/v2/stages", json={"name": "Only", "pipeline_id": other["id"]}))
    refused(api.post("/api/v2/deals", json={"title": "x", "pipeline_id": 1, "stage_id": stage["id"]}), 400, "belong")
    deal = ok(api.post("/api/v2/deals", json={"title": "x", "pipeline_id": other["id"]}))
    assert deal["stage_id"] == stage["id"]
    default = ok(api.post("/api/v2/deals", json={"title": "y"}))
    assert (default["pipeline_id"], default["stage_id"]) == (1, 1)


def test_deal_status_archive_and_listing(api: SpecCheckedClient) -> None:
    won = ok(api.post("/api/v2/deals", json={"title": "Won one", "status": "won", "won_time": "2025-06-30T10:00:00Z"}))
    assert won["won_time"] == "2025-06-30T10:00:00Z" and "lost_time" not in won
    archived = ok(api.post("/api/v2/deals", json={"title": "Old", "status": "lost", "is_archived": True}))
    open_ids = {d["id"] for d in ok(api.get("/api/v2/deals", params={"limit": 500}))}
    assert won["id"] in open_ids and archived["id"] not in open_ids
    assert archived["id"] in {d["id"] for d in ok(api.get("/api/v2/deals/archived", params={"limit": 500}))}
    refused(api.patch(f"/api/v2/deals/{archived['id']}", json={"title": "edit"}), 400, "Archived")
    ok(api.delete(f"/api/v2/deals/{won['id']}"))
    deleted = ok(api.get("/api/v2/deals", params={"status": "deleted", "limit": 500}))
    assert won["id"] in {d["id"] for d in deleted}


# -- activities ------------------------------------------------------------------------------
def test_activity_person_id_is_read_only(api: SpecCheckedClient) -> None:
    person = new_person(api)
    body = refused(api.post("/api/v2/activities", json={"subject": "Call", "person_id": person["id"]}), 400)
    assert body["error"] == ("'person_id' is a read-only field. Add a primary participant to set 'person_id' instead.")
    assert body["code"] == "ERR_BAD_REQUEST"
    activity = ok(api.post("/api/v2/activities", json={
        "subject": "Call", "type": "call", "due_date": "2025-01-02", "due_time": "10:00", "done": True,
        "participants": [{"person_id": person["id"], "primary": True}]}))
    assert activity["person_id"] == person["id"] and activity["marked_as_done_time"]
    refused(api.patch(f"/api/v2/activities/{activity['id']}", json={"person_id": person["id"]}), 400, "read-only")
    refused(api.post("/api/v2/activities", json={"type": "carrier_pigeon"}), 400, "carrier_pigeon")
    refused(api.post("/api/v2/activities", json={"done": 1}), 400, "boolean")
    listed = ok(api.get("/api/v2/activities", params={"person_id": person["id"]}))
    assert [a["id"] for a in listed] == [activity["id"]]


# -- products and deal products --------------------------------------------------------------
def test_products_and_deal_products(api: SpecCheckedClient) -> None:
    product = ok(api.post("/api/v2/products", json={"name": "Widget", "code": "W-1",
                                                    "prices": [{"currency": "EUR", "price": 10}]}), 201)
    assert product["prices"][0]["product_id"] == product["id"]
    refused(api.post("/api/v2/products", json={"name": ""}), 400, "name")
    deal = ok(api.post("/api/v2/deals", json={"title": "With products"}))
    line = ok(api.post(f"/api/v2/deals/{deal['id']}/products",
                       json={"product_id": product["id"], "item_price": 10, "quantity": 3}), 201)
    assert line["sum"] == 30 and line["name"] == "Widget"
    bulk = ok(api.post(f"/api/v2/deals/{deal['id']}/products/bulk", json={"data": [
        {"product_id": product["id"], "item_price": 5, "quantity": 2, "discount": 10, "discount_type": "amount"}]}),
        201)
    assert bulk[0]["sum"] == 0
    assert ok(api.get(f"/api/v2/deals/{deal['id']}"))["value"] == 30
    ok(api.patch(f"/api/v2/deals/{deal['id']}/products/{line['id']}", json={"quantity": 4}))
    assert ok(api.get(f"/api/v2/deals/{deal['id']}"))["value"] == 40
    both = ok(api.get("/api/v2/deals/products", params={"deal_ids": str(deal["id"])}))
    assert len(both) == 2
    assert len(ok(api.get(f"/api/v2/deals/{deal['id']}/products"))) == 2
    ok(api.delete(f"/api/v2/deals/{deal['id']}/products/{bulk[0]['id']}"))
    assert len(ok(api.get(f"/api/v2/deals/{deal['id']}/products"))) == 1
    too_many = {"data": [{"product_id": product["id"], "item_price": 1, "quantity": 1}] * 101}
    refused(api.post(f"/api/v2/deals/{deal['id']}/products/bulk", json=too_many), 400, "at most 100")
    refused(api.post(f"/api/v2/deals/{deal['id']}/products", json={"product_id": 999, "item_price": 1, "quantity": 1}),
            400, "Product")
    ok(api.delete(f"/api/v2/products/{product['id']}"))
    refused(api.post(f"/api/v2/deals/{deal['id']}/products",
                     json={"product_id": product["id"], "item_price": 1, "quantity": 1}), 400, "deleted")


# -- pipelines and stages --------------------------------------------------------------------
def test_pipelines_and_stages_crud(api: SpecCheckedClient) -> None:
    pipeline = ok(api.post("/api/v2/pipelines", json={"name": "Renewals"}))
    stage = ok(api.post("/api/v2/stages", json={"name": "Due", "pipeline_id": pipeline["id"], "deal_probability": 50}))
    assert stage["order_nr"] == 1
    ok(api.patch(f"/api/v2/stages/{stage['id']}", json={"name": "Due soon"}))
    assert ok(api.get(f"/api/v2/stages/{stage['id']}"))["name"] == "Due soon"
    assert [s["id"] for s in ok(api.get("/api/v2/stages", params={"pipeline_id": pipeline["id"]}))] == [stage["id"]]
    ok(api.patch(f"/api/v2/pipelines/{pipeline['id']}", json={"name": "Renewals 2"}))
    assert pipeline["id"] in {p["id"] for p in ok(api.get("/api/v2/pipelines"))}
    refused(api.post("/api/v2/stages", json={"name": "No pipeline"}), 400, "pipeline_id")
    ok(api.delete(f"/api/v2/stages/{stage['id']}"))
    ok(api.delete(f"/api/v2/pipelines/{pipeline['id']}"))
    assert pipeline["id"] not in {p["id"] for p in ok(api.get("/api/v2/pipelines"))}


# -- custom fields ---------------------------------------------------------------------------
def test_field_lists_show_system_and_custom_fields(api: SpecCheckedClient) -> None:
    field = new_field(api, "personFields", "enum", options=[{"label": "A"}, {"label": "B"}])
    assert len(field["field_code"]) == 40 and int(field["field_code"], 16) >= 0
    listed = ok(api.get("/api/v2/personFields", params={"limit": 500}))
    codes = {f["field_code"]: f for f in listed}
    assert codes["name"]["is_custom_field"] is False and codes[field["field_code"]]["is_custom_field"] is True
    assert ok(api.get(f"/api/v2/personFields/{field['field_code']}"))["options"][1]["label"] == "B"
    renamed = ok(api.patch(f"/api/v2/personFields/{field['field_code']}", json={"field_name": "Segment"}))
    assert renamed["field_name"] == "Segment"
    refused(api.post("/api/v2/personFields", json={"field_name": "X", "field_type": "enum"}), 400, "options")
    refused(api.post("/api/v2/personFields", json={"field_name": "X", "field_type": "status"}), 400, "field_type")
    refused(api.delete("/api/v2/personFields/name"), 400, "System")
    assert ok(api.get("/api/v2/activityFields"))
    assert api.post("/api/v2/activityFields", json={"field_name": "X", "field_type": "varchar"}).status_code == 405
    ok(api.delete(f"/api/v2/personFields/{field['field_code']}"))
    refused(api.get(f"/api/v2/personFields/{field['field_code']}"), 404)


def test_options_are_added_in_bulk_to_option_fields_only(api: SpecCheckedClient) -> None:
    field = new_field(api, "dealFields", "set", options=[{"label": "A"}])
    added = ok(api.post(f"/api/v2/dealFields/{field['field_code']}/options", json=[{"label": "B"}, {"label": "C"}]))
    assert [option["label"] for option in added] == ["B", "C"]
    labels = [o["label"] for o in ok(api.get(f"/api/v2/dealFields/{field['field_code']}"))["options"]]
    assert labels == ["A", "B", "C"]
    refused(api.post(f"/api/v2/dealFields/{field['field_code']}/options", json=[{"label": "A"}]), 400, "unique")
    refused(api.post(f"/api/v2/dealFields/{field['field_code']}/options", json={"label": "D"}), 400, "array")
    text = new_field(api, "dealFields", "varchar")
    refused(api.post(f"/api/v2/dealFields/{text['field_code']}/options", json=[{"label": "D"}]), 400, "enum and set")


def test_field_codes_are_random_per_instance() -> None:
    codes = []
    for _ in range(2):
        simulator = create_app(minimal_seed()).state.simulator
        codes.append(simulator.create_field("deal", "Dynamics ID", "varchar", None).field_code)
    assert codes[0] != codes[1]


def test_custom_field_values_are_typed(api: SpecCheckedClient) -> None:
    org = new_org(api, "Typed Org")
    person = new_person(api, "Typed Person")
    f = {kind: new_field(api, "organizationFields", kind, **({"options": [{"label": "x"}, {"label": "y"}]}
                                                              if kind in ("enum", "set") else {}))
         for kind in ("varchar", "text", "double", "monetary", "enum", "set", "date", "phone", "address", "user",
                      "org", "people", "daterange")}
    enum_id, other_id = (o["id"] for o in f["enum"]["options"])
    set_ids = [o["id"] for o in f["set"]["options"]]
    good = {f["varchar"]["field_code"]: "CRM-1", f["text"]["field_code"]: "long " * 100,
            f["double"]["field_code"]: 2.5, f["monetary"]["field_code"]: {"value": 100, "currency": "USD"},
            f["enum"]["field_code"]: enum_id, f["set"]["field_code"]: set_ids, f["date"]["field_code"]: "2024-01-31",
            f["phone"]["field_code"]: "+47 555", f["address"]["field_code"]: {"value": "1 Main St", "country": "NO"},
            f["user"]["field_code"]: 2, f["org"]["field_code"]: org["id"], f["people"]["field_code"]: person["id"],
            f["daterange"]["field_code"]: {"value": "2024-01-01", "until": "2024-02-01"}}
    stored = ok(api.post("/api/v2/organizations", json={"name": "With values", "custom_fields": good}))
    assert stored["custom_fields"][f["monetary"]["field_code"]] == {"value": 100, "currency": "USD"}
    assert stored["custom_fields"][f["set"]["field_code"]] == sorted(set_ids)
    assert stored["custom_fields"][f["address"]["field_code"]]["value"] == "1 Main St"
    only = ok(api.get(f"/api/v2/organizations/{stored['id']}", params={"custom_fields": f["enum"]["field_code"]}))
    assert only["custom_fields"] == {f["enum"]["field_code"]: enum_id}
    cleared = ok(api.patch(f"/api/v2/organizations/{stored['id']}",
                           json={"custom_fields": {f["set"]["field_code"]: None, f["enum"]["field_code"]: other_id}}))
    assert cleared["custom_fields"][f["set"]["field_code"]] is None
    bad = [
        (f["varchar"]["field_code"], "x" * 256, "255"),
        (f["double"]["field_code"], "2.5", "number"),
        (f["monetary"]["field_code"], 100, "object"),
        (f["monetary"]["field_code"], {"value": 1, "currency": "XXX"}, "currency"),
        (f["enum"]["field_code"], str(enum_id), "number"),
        (f["enum"]["field_code"], 999_999, "does not exist"),
        (f["set"]["field_code"], [], "at least 1"),
        (f["set"]["field_code"], set_ids[0], "array"),
        (f["date"]["field_code"], "2024-01-31T00:00:00Z", "YYYY-MM-DD"),
        (f["address"]["field_code"], {"country": "NO"}, "value"),
        (f["address"]["field_code"], "1 Main St", "object"),
        (f["user"]["field_code"], 3, "Active user"),
        (f["org"]["field_code"], 999_999, "Organization"),
        (f["people"]["field_code"], "1", "number"),
        ("0" * 40, "x", "not allowed"),
    ]
    for code, value, message in bad:
        body = refused(api.post("/api/v2/organizations", json={"name": "Bad", "custom_fields": {code: value}}),
                       400, message)
        assert body["code"] == "ERR_SCHEMA_VALIDATION_FAILED"


def test_custom_field_cap_is_enforced() -> None:
    app = create_app(minimal_seed(PipedrivePlan(custom_field_cap=2)))
    with LoopbackServer(app) as running, httpx.Client(base_url=running.url,
                                                      headers={"x-api-token": ADMIN_TOKEN}) as client:
        for segment in ("dealFields", "personFields"):
            ok(client.post(f"/api/v2/{segment}", json={"field_name": "F", "field_type": "varchar"}))
        body = refused(client.post("/api/v2/productFields", json={"field_name": "F", "field_type": "varchar"}), 403)
        assert body["code"] == "feature_capping_custom_fields_limit"


def test_deals_and_leads_cap_is_enforced() -> None:
    app = create_app(minimal_seed(PipedrivePlan(deals_and_leads_cap=2)))
    with LoopbackServer(app) as running, httpx.Client(base_url=running.url,
                                                      headers={"x-api-token": ADMIN_TOKEN}) as client:
        org = ok(client.post("/api/v2/organizations", json={"name": "Cap"}))
        ok(client.post("/api/v2/deals", json={"title": "one"}))
        ok(client.post("/v1/leads", json={"title": "two", "organization_id": org["id"]}), 201)
        body = refused(client.post("/api/v2/deals", json={"title": "three"}), 403)
        assert body["code"] == "feature_capping_deals_limit"
        refused(client.post("/v1/leads", json={"title": "four", "organization_id": org["id"]}), 403)
        ok(client.post("/api/v2/deals", json={"title": "archived", "is_archived": True}))


# -- search ----------------------------------------------------------------------------------
def test_search_endpoints(api: SpecCheckedClient) -> None:
    dynamics_id = new_field(api, "personFields", "varchar")["field_code"]
    org = new_org(api, "Searchable Corp")
    person = new_person(api, "Zed Searchable", org_id=org["id"], emails=[{"value": "zed@search.example"}],
                        custom_fields={dynamics_id: "dyn-42"})
    deal = ok(api.post("/api/v2/deals", json={"title": "Searchable deal", "person_id": person["id"]}))
    by_email = ok(api.get("/api/v2/persons/search", params={"term": "zed@search.example", "fields": "email",
                                                            "exact_match": "true"}))
    assert [i["item"]["id"] for i in by_email["items"]] == [person["id"]]
    by_key = ok(api.get("/api/v2/persons/search", params={"term": "dyn-42", "fields": "custom_fields",
                                                          "exact_match": "true"}))
    assert [i["item"]["id"] for i in by_key["items"]] == [person["id"]]
    partial = ok(api.get("/api/v2/persons/search", params={"term": "dyn-4", "exact_match": "true"}))
    assert partial["items"] == []
    orgs = ok(api.get("/api/v2/organizations/search", params={"term": "Searchable"}))["items"]
    assert [i["item"]["id"] for i in orgs] == [org["id"]]
    deals = ok(api.get("/api/v2/deals/search", params={"term": "Searchable deal"}))["items"]
    assert [i["item"]["id"] for i in deals] == [deal["id"]]
    everything = ok(api.get("/api/v2/itemSearch", params={"term": "Searchable"}))
    assert {i["item"]["type"] for i in everything["items"]} == {"person", "organization", "deal"}
    refused(api.get("/api/v2/persons/search", params={"term": "z"}), 400, "term")
    refused(api.get("/api/v2/persons/search", params={"term": "zed", "fields": "shoe_size"}), 400, "fields")


# -- v1: leads, notes, files, users, relationships -------------------------------------------
def test_leads_with_deal_fields_in_v1_format(api: SpecCheckedClient) -> None:
    org = new_org(api, "Lead Org")
    money = new_field(api, "dealFields", "monetary")["field_code"]
    choice = new_field(api, "dealFields", "enum", options=[{"label": "a"}])
    labels = ok(api.get("/v1/leadLabels"))
    label = ok(api.post("/v1/leadLabels", json={"name": "VIP", "color": "green"}))
    lead = ok(api.post("/v1/leads", json={
        "title": "Lead 1", "organization_id": org["id"], "label_ids": [labels[0]["id"], label["id"]],
        "value": {"amount": 100, "currency": "EUR"}, "expected_close_date": "2025-12-31",
        money: 500, f"{money}_currency": "USD", choice["field_code"]: choice["options"][0]["id"]}), 201)
    assert lead[money] == 500 and lead[f"{money}_currency"] == "USD"
    assert lead[choice["field_code"]] == str(choice["options"][0]["id"])
    assert ok(api.get(f"/v1/leads/{lead['id']}"))["title"] == "Lead 1"
    refused(api.post("/v1/leads", json={"title": "No parent"}), 400, "person or an organization")
    refused(api.post("/v1/leads", json={"title": "x", "organization_id": org["id"], "custom_fields": {}}), 400,
            "not allowed")
    refused(api.post("/v1/leads", json={"title": "x", "organization_id": org["id"], "label_ids": [
        "00000000-0000-4000-8000-000000000000"]}), 400, "Lead label")
    ok(api.patch(f"/v1/leads/{lead['id']}", json={"is_archived": True}))
    assert lead["id"] not in {x["id"] for x in ok(api.get("/v1/leads"))}
    assert lead["id"] in {x["id"] for x in ok(api.get("/v1/leads/archived"))}
    refused(api.patch(f"/v1/leads/{lead['id']}", json={"title": "edit"}), 400, "Archived")
    ok(api.delete(f"/v1/leads/{lead['id']}"))
    assert api.get(f"/v1/leads/{lead['id']}").status_code == 404
    sources = ok(api.get("/v1/leadSources"))
    assert {"name": "API"} in sources
    lead_fields = ok(api.get("/v1/leadFields"))
    assert {f["key"] for f in lead_fields} >= {"title", money}


def test_notes_crud_filters_and_paging(api: SpecCheckedClient) -> None:
    org = new_org(api, "Noted")
    ids = [ok(api.post("/v1/notes", json={"content": f"<p>note {i}</p>", "org_id": org["id"],
                                          "add_time": "2020-05-01 10:00:00"}))["id"] for i in range(3)]
    first = ok(api.get(f"/v1/notes/{ids[0]}"))
    assert first["add_time"] == "2020-05-01 10:00:00" and first["organization"]["name"] == "Noted"
    response = api.get("/v1/notes", params={"org_id": org["id"], "start": 0, "limit": 2})
    assert [n["id"] for n in ok(response)] == ids[:2]
    pagination = response.json()["additional_data"]["pagination"]
    assert pagination == {"start": 0, "limit": 2, "more_items_in_collection": True, "next_start": 2}
    ok(api.put(f"/v1/notes/{ids[0]}", json={"content": "changed"}))
    assert ok(api.delete(f"/v1/notes/{ids[1]}")) is True
    assert [n["id"] for n in ok(api.get("/v1/notes", params={"org_id": org["id"]}))] == [ids[0], ids[2]]
    refused(api.post("/v1/notes", json={"content": "orphan"}), 400, "attached")
    refused(api.post("/v1/notes", json={"content": "x", "org_id": org["id"], "add_time": "2020-05-01T10:00:00Z"}),
            400, "YYYY-MM-DD HH:MM:SS")
    refused(api.post("/v1/notes", json={"org_id": org["id"]}), 400, "content")
    refused(api.post("/v1/notes", json={"content": "x", "deal_id": 999_999}), 400, "Deal")


def test_files_upload_download_and_size_limit(api: SpecCheckedClient) -> None:
    org = new_org(api, "Filed")
    uploaded = ok(api.post("/v1/files", data={"org_id": str(org["id"])}, files={"file": ("a.txt", b"hello world")}))
    assert uploaded["file_size"] == 11 and uploaded["org_id"] == org["id"]
    download = api.get(f"/v1/files/{uploaded['id']}/download")
    assert download.status_code == 200 and download.content == b"hello world"
    assert ok(api.get(f"/v1/files/{uploaded['id']}"))["file_name"] == "a.txt"
    assert uploaded["id"] in {f["id"] for f in ok(api.get("/v1/files", params={"limit": 100}))}
    refused(api.get("/v1/files", params={"limit": 101}), 400, "limit")
    too_big = api.post("/v1/files", data={"org_id": str(org["id"])}, files={"file": ("big.bin", b"x" * 1025)})
    refused(too_big, 413, "too large")
    refused(api.post("/v1/files", files={"file": ("a.txt", b"x")}), 400, "Exactly one")
    refused(api.post("/v1/files", data={"org_id": "999999"}, files={"file": ("a.txt", b"x")}), 400, "Organization")
    ok(api.delete(f"/v1/files/{uploaded['id']}"))
    assert api.get(f"/v1/files/{uploaded['id']}").status_code == 404


def test_users_activity_types_currencies(api: SpecCheckedClient, server: LoopbackServer,
                                         specs: dict[str, OpenAPI]) -> None:
    users = ok(api.get("/v1/users"))
    assert {u["id"] for u in users} == {1, 2, 3}
    assert ok(api.get("/v1/users/me"))["id"] == 1
    with SpecCheckedClient(server.url, specs, token=SECOND_TOKEN) as second:
        me = ok(second.get("/api/v1/users/me"))
        assert me["id"] == 2 and me["is_you"] is True
    assert ok(api.get("/v1/users/3"))["active_flag"] is False
    assert api.get("/v1/users/99").status_code == 404
    assert "call" in {t["key_string"] for t in ok(api.get("/v1/activityTypes"))}
    assert {c["code"] for c in ok(api.get("/v1/currencies"))} == {"EUR", "USD"}


def test_organization_relationships(api: SpecCheckedClient) -> None:
    parent, child, grandchild = (new_org(api, name) for name in ("Parent", "Child", "Grandchild"))
    link = ok(api.post("/v1/organizationRelationships", json={
        "type": "parent", "rel_owner_org_id": parent["id"], "rel_linked_org_id": child["id"]}))
    assert link["rel_owner_org_id"]["name"] == "Parent"
    ok(api.post("/v1/organizationRelationships", json={
        "type": "parent", "rel_owner_org_id": child["id"], "rel_linked_org_id": grandchild["id"]}))
    refused(api.post("/v1/organizationRelationships", json={
        "type": "parent", "rel_owner_org_id": grandchild["id"], "rel_linked_org_id": parent["id"]}), 400, "circular")
    listed = ok(api.get("/v1/organizationRelationships", params={"org_id": child["id"]}))
    assert {r["calculated_type"] for r in listed} == {"parent", "daughter"}
    refused(api.get("/v1/organizationRelationships"), 400, "org_id")
    ok(api.put(f"/v1/organizationRelationships/{link['id']}", json={"type": "related"}))
    assert ok(api.get(f"/v1/organizationRelationships/{link['id']}"))["type"] == "related"
    ok(api.delete(f"/v1/organizationRelationships/{link['id']}"))
    assert api.get(f"/v1/organizationRelationships/{link['id']}").status_code == 404


# -- controls --------------------------------------------------------------------------------
def test_snapshot_and_changes_behind_the_clients_back(api: SpecCheckedClient, server: LoopbackServer) -> None:
    org = new_org(api, "Before")
    changed = httpx.patch(f"{server.url}/_sandbox/records/organizations/{org['id']}", json={"name": "After"})
    assert changed.status_code == 200
    assert ok(api.get(f"/api/v2/organizations/{org['id']}"))["name"] == "After"
    snapshot = httpx.get(f"{server.url}/_sandbox/snapshot").json()
    assert {"organizations", "persons", "deals", "leads", "notes", "files"} <= set(snapshot)
    assert any(o["id"] == org["id"] and o["name"] == "After" for o in snapshot["organizations"])


def test_every_success_was_validated_against_the_spec(api: SpecCheckedClient) -> None:
    assert api.validated > 100


def test_the_spec_check_catches_a_wrong_shape(server: LoopbackServer, specs: dict[str, OpenAPI]) -> None:
    request = httpx.Request("GET", f"{server.url}/api/v2/deals/1")
    wrong = httpx.Response(200, json={"success": True, "data": {"id": "1", "value": "12"}}, request=request)
    with pytest.raises(InvalidData):
        specs["v2"].validate_response(_Request(request), _Response(wrong))
