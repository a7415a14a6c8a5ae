"""The client against the Pipedrive simulator, over real loopback HTTP.

Records, paging and files per object; the custom-field registry; pacing under a small burst
limit; and each failure the client must translate or survive (429 burst and budget, 5xx,
in-doubt writes, bad token, nothing listening).
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from migration_pipeline.errors import AuthenticationError, BudgetExhausted, ConfigurationError, ServiceUnavailable
from migration_pipeline.pipedrive import CustomFieldRegistry, PipedriveClient, WriteInDoubt, run_sync
from migration_pipeline.pipedrive.errors import DailyBudgetExhausted, PipedriveApiError, TrafficBlocked
from migration_pipeline.sandbox.dataset import PipedrivePlan
from migration_pipeline.sandbox.serve import LoopbackServer
from migration_pipeline.settings import Settings
from migration_pipeline_tests.test_pipedrive.conftest import ADMIN_TOKEN, SALES_TOKEN, WINDOW, Company

StartCompany = Callable[..., Company]

# One record body per v2 object, its update, and the field the update changes.
V2_OBJECTS: list[tuple[str, Callable[[int], dict[str, Any]], dict[str, Any]]] = [
    ("organizations", lambda n: {"name": f"Contoso {n}"}, {"name": "Contoso renamed"}),
    ("persons", lambda n: {"name": f"Ada {n}", "emails": [{"value": f"ada{n}@contoso.com", "primary": True, "label": "work"}]}, {"name": "Ada renamed"}),
    ("products", lambda n: {"name": f"Widget {n}", "code": f"W-{n}", "prices": [{"currency": "EUR", "price": 10 + n}]}, {"name": "Widget renamed"}),
    ("deals", lambda n: {"title": f"Renewal {n}", "value": 1000 + n, "currency": "EUR", "pipeline_id": 1, "stage_id": 1}, {"title": "Renewal renamed"}),
    ("activities", lambda n: {"subject": f"Call {n}", "type": "call", "due_date": "2026-01-15"}, {"subject": "Call renamed"}),
    ("pipelines", lambda n: {"name": f"Pipeline {n}"}, {"name": "Pipeline renamed"}),
    ("stages", lambda n: {"name": f"Stage {n}", "pipeline_id": 1}, {"name": "Stage renamed"}),
]


@pytest.mark.parametrize(("resource", "body", "change"), V2_OBJECTS, ids=[name for name, _, _ in V2_OBJECTS])
def test_v2_objects_create_list_with_cursor_update_delete(company: StartCompany, resource: str, body, change) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> tuple[list[int], list[int], dict[str, Any], list[int]]:
        before = [row["id"] async for row in client.iter_v2(resource)]
        created = [(await client.create(resource, body(n)))["id"] for n in range(5)]
        listed = [row["id"] async for row in client.iter_v2(resource, limit=2)]
        updated = await client.update(resource, created[0], change)
        fetched = await client.get(resource, created[0])
        assert fetched[next(iter(change))] == updated[next(iter(change))]
        assert (await client.delete(resource, created[1]))["id"] == created[1]
        after = [row["id"] async for row in client.iter_v2(resource, limit=2)]
        return created, [i for i in listed if i not in before], updated, [i for i in after if i not in before]

    (created, listed, updated, after), client = sandbox.run(work)
    assert listed == created  # every page followed, nothing twice
    assert all(updated[key] == value for key, value in change.items())
    assert after == [created[0], *created[2:]]
    usage = client.usage.snapshot()
    assert usage["tokens_by_operation"][f"POST /api/v2/{resource}"] == 5 * 5
    assert usage["tokens_by_operation"][f"PATCH /api/v2/{resource}/{{id}}"] == 5
    assert usage["tokens_by_operation"][f"DELETE /api/v2/{resource}/{{id}}"] == 3
    assert usage["tokens"] == sandbox.simulator.usage()["tokens_used"]
    assert usage["rate_limited"] == 0 and usage["retries"] == 0


def test_deal_products_bulk_is_priced_as_one_bulk_call(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> list[dict[str, Any]]:
        deal = await client.create("deals", {"title": "Bundle", "pipeline_id": 1, "stage_id": 1})
        products = [await client.create("products", {"name": f"Part {n}"}) for n in range(3)]
        lines = [{"product_id": p["id"], "item_price": 10.0, "quantity": 2} for p in products]
        await client.create(f"deals/{deal['id']}/products/bulk", {"data": lines})
        return [row async for row in client.iter_v2(f"deals/{deal['id']}/products")]

    attached, client = sandbox.run(work)
    assert sorted(row["quantity"] for row in attached) == [2, 2, 2]
    assert client.usage.tokens_by_object["deals/products/bulk"] == 25


def test_v1_leads_notes_and_users(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> dict[str, Any]:
        org = await client.create("organizations", {"name": "Fabrikam"})
        leads = [await client.create("leads", {"title": f"Lead {n}", "organization_id": org["id"]}) for n in range(3)]
        patched = await client.update("leads", leads[0]["id"], {"title": "Lead renamed"})
        listed = [row["id"] async for row in client.iter_v1("leads", limit=2)]
        note = await client.create("notes", {"content": "<p>Met at the fair</p>", "org_id": org["id"]})
        edited = await client.update("notes", note["id"], {"content": "<p>Met twice</p>"})
        notes = [row async for row in client.iterate("notes", {"org_id": org["id"]})]
        await client.delete("notes", note["id"])
        return {"leads": leads, "patched": patched, "listed": listed, "edited": edited, "notes": notes,
                "users": await client.users()}

    result, client = sandbox.run(work)
    assert result["patched"]["title"] == "Lead renamed"
    assert result["listed"] == [lead["id"] for lead in result["leads"]]
    assert "Met twice" in result["edited"]["content"] and len(result["notes"]) == 1
    assert {user["email"] for user in result["users"]} == {"ada@example.com", "sam@example.com"}
    operations = client.usage.requests_by_operation
    assert operations["PATCH /api/v1/leads/{id}"] == 1 and operations["PUT /api/v1/notes/{id}"] == 1
    assert operations["GET /api/v1/leads"] == 2  # two pages of two


def test_files_upload_as_multipart_from_bytes_and_from_a_stream(company: StartCompany) -> None:
    sandbox = company()
    payload = b"%PDF-1.4 quarterly report\n" * 4000

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 8192):
            yield payload[start : start + 8192]

    async def work(client: PipedriveClient) -> tuple[dict[str, Any], dict[str, Any]]:
        deal = await client.create("deals", {"title": "With files", "pipeline_id": 1, "stage_id": 1})
        from_bytes = await client.upload_file(payload, "report.pdf", {"deal_id": deal["id"]})
        from_stream = await client.upload_file(chunks(), "report-copy.pdf", {"deal_id": deal["id"]})
        with pytest.raises(ValueError):
            await client.upload_file(b"x", "orphan.txt", {})
        assert await client.download_file(from_stream["id"]) == payload  # the bytes back, not an envelope
        return from_bytes, from_stream

    (from_bytes, from_stream), client = sandbox.run(work)
    assert (from_bytes["file_name"], from_bytes["file_size"]) == ("report.pdf", len(payload))
    assert (from_stream["file_name"], from_stream["file_size"]) == ("report-copy.pdf", len(payload))
    assert sandbox.simulator.files[from_stream["id"]] == payload
    assert client.usage.tokens_by_operation["POST /api/v1/files"] == 20
    assert client.usage.tokens_by_operation["GET /api/v1/files/{id}/download"] == 20


def test_custom_field_registry_creates_once_and_reuses(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> dict[str, Any]:
        first = CustomFieldRegistry(client)
        code = await first.ensure("organization", "Dynamics ID", "varchar")
        region = await first.ensure("deal", "Region", "enum", ["EMEA", "APAC"])
        again = await first.ensure("organization", "Dynamics ID", "varchar")
        # A new registry (a later run) finds the fields by name instead of creating them again.
        second = CustomFieldRegistry(client)
        reused = await second.ensure("organization", "Dynamics ID", "varchar")
        region_again = await second.ensure("deal", "Region", "enum", ["APAC", "EMEA"])
        lead_code = await second.ensure("lead", "Dynamics ID", "varchar")
        lead_fields = {field.field_name: field.field_code for field in await second.fields("lead")}
        with pytest.raises(ConfigurationError, match="exists with type 'varchar'"):
            await second.ensure("organization", "Dynamics ID", "double")
        org = await client.create("organizations", {"name": "Tagged", "custom_fields": {code: "acc-1"}})
        return {"code": code, "again": again, "reused": reused, "region": region, "region_again": region_again,
                "options": (await second.find("deal", "Region")).option_ids(), "lead_code": lead_code,
                "lead_fields": lead_fields, "org": org}

    result, _ = sandbox.run(work)
    assert result["code"] == result["again"] == result["reused"]
    assert len(result["code"]) == 40
    assert result["region"] == result["region_again"]
    assert list(result["options"]) == ["EMEA", "APAC"]
    assert result["lead_fields"]["Dynamics ID"] == result["lead_code"]
    assert result["org"]["custom_fields"][result["code"]] == "acc-1"
    custom = [f for f in sandbox.simulator.custom_fields("organization").values() if f.field_name == "Dynamics ID"]
    assert len(custom) == 1


def test_registry_adds_missing_options_to_an_existing_field(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> dict[str, int | str]:
        registry = CustomFieldRegistry(client)
        await registry.ensure("deal", "Region", "enum", ["EMEA", "APAC"])
        await CustomFieldRegistry(client).ensure("deal", "Region", "enum", ["APAC", "AMER"])
        return (await CustomFieldRegistry(client).find("deal", "Region")).option_ids()

    options, client = sandbox.run(work)
    assert list(options) == ["EMEA", "APAC", "AMER"]
    assert client.usage.requests_by_operation["POST /api/v2/dealFields/{field_code}/options"] == 1


def test_pacing_keeps_under_a_small_burst_limit(company: StartCompany) -> None:
    sandbox = company(PipedrivePlan(burst_per_2s=10))

    async def work(client: PipedriveClient) -> float:
        started = time.monotonic()
        await asyncio.gather(*(client.request("GET", "pipelines", version="v2") for _ in range(40)))
        return time.monotonic() - started

    elapsed, client = sandbox.run(work)
    assert client.usage.rate_limited == 0
    assert client.usage.requests == 40
    assert client.pool.lanes[0].burst.limit == 10  # learned from x-ratelimit-limit
    # 9 per window (90 % of 10): 40 requests need at least 4 full windows after the first.
    assert elapsed >= 4 * WINDOW * 0.95


def test_two_tokens_share_the_work(company: StartCompany) -> None:
    sandbox = company(PipedrivePlan(burst_per_2s=10))

    async def work(client: PipedriveClient) -> float:
        started = time.monotonic()
        await asyncio.gather(*(client.request("GET", "stages", version="v2") for _ in range(36)))
        return time.monotonic() - started

    elapsed, client = sandbox.run(work, ADMIN_TOKEN, SALES_TOKEN)
    assert client.usage.rate_limited == 0
    assert elapsed < 4 * WINDOW  # one token would need at least 3 windows after the first, two need 1


def test_a_forced_burst_429_pauses_the_token_and_is_retried_after_the_reset(company: StartCompany) -> None:
    sandbox = company(PipedrivePlan(burst_per_2s=3))
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": ADMIN_TOKEN}) as other_integration:
        for _ in range(3):  # another program on the same token fills the window
            assert other_integration.get("/api/v2/pipelines").status_code == 200

    async def work(client: PipedriveClient) -> float:
        started = time.monotonic()
        await client.request("GET", "pipelines", version="v2")
        return time.monotonic() - started

    elapsed, client = sandbox.run(work)
    assert (client.usage.rate_limited, client.usage.retries) == (1, 1)
    assert elapsed >= 1.0  # the simulator's reset hint (whole seconds) was honoured


def test_budget_exhaustion_raises_at_once_with_the_reset_time(company: StartCompany) -> None:
    sandbox = company(PipedrivePlan(daily_token_budget=25))

    async def work(client: PipedriveClient) -> None:
        for _ in range(3):
            await client.request("GET", "deals", version="v2")  # 10 tokens each
        with pytest.raises(BudgetExhausted) as first:
            await client.request("GET", "deals", version="v2")
        served = sandbox.simulator.usage()["requests_served"]
        with pytest.raises(BudgetExhausted):  # the client stopped: no request leaves any more
            await client.create("organizations", {"name": "Too late"})
        assert sandbox.simulator.usage()["requests_served"] == served
        raise first.value

    with pytest.raises(DailyBudgetExhausted) as caught:
        sandbox.run(work)
    error = caught.value
    midnight = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert error.reset_at == midnight  # the simulator's reset (UTC midnight), read from its answer
    assert "migrate run" in str(error) and f"{error.reset_at:%Y-%m-%d %H:%M}" in str(error)


def test_a_cloudflare_block_stops_the_client(company: StartCompany) -> None:
    sandbox = company(PipedrivePlan(burst_per_2s=2))
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": ADMIN_TOKEN}) as hammer:
        statuses = [hammer.get("/api/v2/pipelines").status_code for _ in range(12)]
    assert statuses[-1] == 403  # a careless integration on the same token earned the block

    async def work(client: PipedriveClient) -> None:
        with pytest.raises(TrafficBlocked) as caught:
            await client.request("GET", "pipelines", version="v2")
        served = sandbox.simulator.usage()["requests_served"]
        with pytest.raises(TrafficBlocked):
            await client.request("GET", "stages", version="v2")
        assert sandbox.simulator.usage()["requests_served"] == served
        assert "Stop every integration" in str(caught.value)

    sandbox.run(work)


def test_5xx_on_a_get_is_retried(company: StartCompany) -> None:
    sandbox = company(fault_rate=0.4)

    async def work(client: PipedriveClient) -> int:
        rows = 0
        for _ in range(15):
            rows += len(await client.request("GET", "stages", version="v2"))
        return rows

    rows, client = sandbox.run(work)
    assert rows == 15 * 2
    assert client.usage.retries > 0


def test_a_502_on_a_post_raises_write_in_doubt_and_is_not_resent(company: StartCompany) -> None:
    sandbox = company(fault_rate=1.0, applied_fault_share=1.0)
    body = {"name": "Contoso in doubt"}

    async def work(client: PipedriveClient) -> WriteInDoubt:
        with pytest.raises(WriteInDoubt) as caught:
            await client.create("organizations", body)
        return caught.value

    error, client = sandbox.run(work)
    assert (error.method, error.path, error.version, error.body, error.status_code) == ("POST", "/organizations", "v2", body, 502)
    assert client.usage.requests == 1 and client.usage.retries == 0
    assert [org["name"] for org in sandbox.simulator.store.rows("organizations")] == ["Contoso in doubt"]


def test_a_timeout_puts_a_post_in_doubt_but_a_get_is_retried(company: StartCompany) -> None:
    sandbox = company(latency_ms=300)

    async def work(client: PipedriveClient) -> tuple[WriteInDoubt, ServiceUnavailable]:
        with pytest.raises(WriteInDoubt) as post:
            await client.create("persons", {"name": "Slow Ada"})
        with pytest.raises(ServiceUnavailable) as get:
            await client.request("GET", "persons", version="v2")
        return post.value, get.value

    (post, get), client = sandbox.run(work, timeout=0.1, max_attempts=3)
    assert "ReadTimeout" in str(post) and post.body == {"name": "Slow Ada"}
    assert "3 attempts" in str(get) and client.usage.retries == 2


def test_searches_are_paced_in_their_own_window(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> None:
        await client.create("persons", {"name": "Ada Lovelace"})
        found = await asyncio.gather(
            *(client.request("GET", "persons/search", version="v2", params={"term": "Lovelace"}) for _ in range(14))
        )
        assert all(result["items"] for result in found)

    _, client = sandbox.run(work)
    assert client.usage.rate_limited == 0
    assert client.usage.tokens_by_operation["GET /api/v2/persons/search"] == 14 * 20


def test_a_bad_token_names_the_setting_and_never_shows_the_token(company: StartCompany) -> None:
    sandbox = company()
    wrong = "wrong-token-3c2b1a0f9e8d7c6b5a4f"

    async def work(client: PipedriveClient) -> None:
        await client.users()

    with pytest.raises(AuthenticationError) as caught:
        sandbox.run(work, wrong)
    assert "PIPEDRIVE_API_TOKEN" in str(caught.value) and wrong not in str(caught.value)
    assert wrong not in repr(caught.value)


def test_nothing_listening_names_the_url_setting(company: StartCompany) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PipedriveClient(f"http://127.0.0.1:{port}", [SecretStr(ADMIN_TOKEN)], max_attempts=2, backoff_base=0.01)

    async def work() -> None:
        async with client:
            await client.users()

    with pytest.raises(ServiceUnavailable) as caught:
        asyncio.run(work())
    assert "PIPEDRIVE_URL" in str(caught.value) and ADMIN_TOKEN not in str(caught.value)


def test_a_url_that_is_not_the_api_names_the_setting() -> None:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def homepage(request: object) -> HTMLResponse:
        return HTMLResponse("<html><body>Welcome to Acme</body></html>")

    website = Starlette(routes=[Route("/{rest:path}", homepage)])
    with LoopbackServer(website) as server:
        client = PipedriveClient(server.url, [SecretStr(ADMIN_TOKEN)])

        async def work() -> None:
            async with client:
                await client.users()

        with pytest.raises(PipedriveApiError, match="not Pipedrive's JSON envelope") as caught:
            asyncio.run(work())
    assert "PIPEDRIVE_URL" in str(caught.value)


def test_other_4xx_carry_pipedrives_error(company: StartCompany) -> None:
    sandbox = company()

    async def work(client: PipedriveClient) -> None:
        await client.create("deals", {"value": 5})  # no title

    with pytest.raises(PipedriveApiError) as caught:
        sandbox.run(work)
    assert caught.value.status_code == 400 and caught.value.code


def test_run_sync_serves_synchronous_callers(company: StartCompany) -> None:
    sandbox = company()
    settings = Settings(_env_file=None, pipedrive_url=sandbox.url, pipedrive_api_token=f"{ADMIN_TOKEN},{SALES_TOKEN}")  # type: ignore[call-arg]
    users = run_sync(settings, lambda client: client.users())
    assert len(users) == 2
