"""Service protection, latency, fault injection and the /_sandbox controls, over real HTTP."""

from __future__ import annotations

import time

import httpx

from migration_pipeline.sandbox.dataverse.app import DataverseOptions
from migration_pipeline_tests.test_sandbox.dataverse_fixture import served


def test_requests_over_the_window_get_429_with_growing_retry_after() -> None:
    options = DataverseOptions(request_limit=20, window_seconds=2.0, throttle_penalty_seconds=1.0)
    with served(options=options) as dv:
        started = time.monotonic()
        for _ in range(20):
            assert dv.get("WhoAmI").status_code == 200
        throttled = dv.get("WhoAmI")
        assert throttled.status_code == 429
        assert throttled.json()["error"] == {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 20 over time window of 2 seconds.",
        }
        first = int(throttled.headers["Retry-After"])
        assert 1 <= first <= 2
        for _ in range(3):
            dv.get("WhoAmI")
        assert int(dv.get("WhoAmI").headers["Retry-After"]) > first  # hammering lengthens the penalty
        # token requests are not API requests: they are never throttled
        assert dv.token().status_code == 200
        httpx.post(f"{dv.url}/_sandbox/limiter/reset").raise_for_status()
        assert dv.get("WhoAmI").status_code == 200
        assert time.monotonic() - started < 2.0


def test_throttling_ends_after_retry_after() -> None:
    with served(options=DataverseOptions(request_limit=3, window_seconds=1.0, throttle_penalty_seconds=0.0)) as dv:
        for _ in range(3):
            dv.get("WhoAmI")
        retry = int(dv.get("WhoAmI").headers["Retry-After"])
        time.sleep(retry)
        assert dv.get("WhoAmI").status_code == 200


def test_unauthenticated_requests_do_not_count() -> None:
    with served(options=DataverseOptions(request_limit=2, window_seconds=60)) as dv:
        for _ in range(5):
            assert httpx.get(f"{dv.url}/api/data/v9.2/WhoAmI").status_code == 401
        assert dv.get("WhoAmI").status_code == 200


def test_limits_can_be_tuned_over_http() -> None:
    with served() as dv:
        httpx.put(f"{dv.url}/_sandbox/limiter", json={"request_limit": 1, "window_seconds": 30}).raise_for_status()
        assert dv.get("WhoAmI").status_code == 200
        assert dv.get("WhoAmI").status_code == 429


def test_latency_is_applied_per_request() -> None:
    with served(options=DataverseOptions(latency_ms=150)) as dv:
        started = time.perf_counter()
        dv.get("WhoAmI")
        assert time.perf_counter() - started >= 0.15
        httpx.put(f"{dv.url}/_sandbox/latency", json={"latency_ms": 0}).raise_for_status()
        started = time.perf_counter()
        dv.get("WhoAmI")
        assert time.perf_counter() - started < 0.15


def test_injected_faults_hit_the_next_n_matching_requests() -> None:
    with served() as dv:
        httpx.post(f"{dv.url}/_sandbox/faults", json={"path_prefix": "/api/data/v9.2/accounts", "status": 429, "count": 2, "retry_after": 7}).raise_for_status()
        assert dv.get("contacts", params={"$top": "1"}).status_code == 200  # other paths unaffected
        for _ in range(2):
            response = dv.get("accounts", params={"$top": "1"})
            assert response.status_code == 429 and response.headers["Retry-After"] == "7"
            assert response.json()["error"]["code"] == "0x80072322"
        assert dv.get("accounts", params={"$top": "1"}).status_code == 200
        dv.simulator.inject_fault("/api/", 503, count=1)
        unavailable = dv.get("accounts")
        assert unavailable.status_code == 503 and "error" in unavailable.json()
        assert dv.simulator.stats()["faulted"] == 3


def test_fault_rate_is_seeded_and_clearable() -> None:
    with served() as dv:
        httpx.put(f"{dv.url}/_sandbox/faults/rate", json={"rate": 0.5, "status": 503}).raise_for_status()
        statuses = [dv.get("WhoAmI").status_code for _ in range(40)]
        assert 5 < statuses.count(503) < 35 and statuses.count(200) + statuses.count(503) == 40
        httpx.delete(f"{dv.url}/_sandbox/faults").raise_for_status()
        assert all(dv.get("WhoAmI").status_code == 200 for _ in range(10))


def test_sandbox_row_controls_and_counts_over_http() -> None:
    with served() as dv:
        base = f"{dv.url}/_sandbox"
        before = httpx.get(f"{base}/counts").json()["accounts"]
        created = httpx.post(f"{base}/tables/accounts", json={"name": "Over HTTP", "numberofemployees": 12})
        assert created.status_code == 201
        row = created.json()
        assert row["versionnumber"] > 0 and row["createdon"].endswith("Z")
        patched = httpx.patch(f"{base}/tables/accounts/{row['accountid']}", json={"name": "Renamed"}).json()
        assert patched["name"] == "Renamed" and patched["versionnumber"] > row["versionnumber"]
        served_row = dv.get(f"accounts({row['accountid']})", params={"$select": "name,numberofemployees"}).json()
        assert served_row["name"] == "Renamed" and served_row["numberofemployees"] == 12
        assert served_row["@odata.etag"] == f'W/"{patched["versionnumber"]}"'
        assert httpx.delete(f"{base}/tables/accounts/{row['accountid']}").status_code == 204
        assert httpx.get(f"{base}/counts").json()["accounts"] == before
        unknown = httpx.post(f"{base}/tables/accounts", json={"nosuch": 1})
        assert unknown.status_code == 400 and "nosuch" in unknown.json()["error"]["message"]
        assert httpx.delete(f"{base}/tables/accounts/{row['accountid']}").status_code == 404
        # a polymorphic lookup set without its target gets the target derived
        contact = httpx.post(f"{base}/tables/contacts", json={"lastname": "X", "_parentcustomerid_value": row["accountid"].upper()})
        assert contact.status_code == 400  # the account was deleted, so no table holds that id
        account_id = dv.simulator.store.table("accounts").frame["accountid"].iloc[0]
        contact = httpx.post(f"{base}/tables/contacts", json={"lastname": "X", "_parentcustomerid_value": account_id}).json()
        assert contact["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
