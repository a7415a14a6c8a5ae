"""Rate limits, abuse block, latency and injected faults of the Pipedrive simulator, over HTTP.

A fake clock drives the burst windows and the daily reset, so the tests never sleep for
a window to pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from migration_pipeline.sandbox.dataset import PipedrivePlan
from migration_pipeline.sandbox.pipedrive import PipedriveOptions, create_app
from migration_pipeline.sandbox.pipedrive.minimal import ADMIN_TOKEN, SECOND_TOKEN, minimal_seed
from migration_pipeline.sandbox.serve import LoopbackServer

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                "x-daily-ratelimit-token-limit", "x-daily-ratelimit-token-remaining")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def sandbox(plan: PipedrivePlan, **options: Any) -> Iterator[tuple[httpx.Client, LoopbackServer, FakeClock]]:
    clock = FakeClock(MIDNIGHT + 12 * 3600)
    app = create_app(minimal_seed(plan), PipedriveOptions(clock=clock, random_seed=1, **options))
    with LoopbackServer(app) as server, httpx.Client(base_url=server.url, headers={"x-api-token": ADMIN_TOKEN},
                                                     timeout=10) as client:
        yield client, server, clock


def test_every_answer_carries_the_rate_limit_headers() -> None:
    with sandbox(PipedrivePlan()) as (client, _, _):
        for response in (client.get("/api/v2/deals"), client.post("/api/v2/deals", json={}),
                         client.get("/api/v2/deals/999"), client.get("/v1/users")):
            assert all(name in response.headers for name in RATE_HEADERS), response.headers
        assert client.get("/api/v2/deals").headers["x-daily-ratelimit-token-limit"] == "1500000"


def test_each_operation_costs_its_spec_tokens() -> None:
    with sandbox(PipedrivePlan(daily_token_budget=1000)) as (client, server, _):
        def remaining(response: httpx.Response) -> int:
            return int(response.headers["x-daily-ratelimit-token-remaining"])
        assert remaining(client.post("/api/v2/organizations", json={"name": "A"})) == 995
        assert remaining(client.get("/api/v2/organizations")) == 985
        assert remaining(client.get("/api/v2/organizations/1")) == 984
        assert remaining(client.get("/api/v2/persons/search", params={"term": "ab"})) == 964
        assert remaining(client.post("/v1/notes", json={"content": "x", "org_id": 1})) == 954
        assert httpx.get(f"{server.url}/_sandbox/usage").json()["tokens_used"] == 46


def test_burst_limit_answers_429_with_retry_after_until_the_window_passes() -> None:
    with sandbox(PipedrivePlan(burst_per_2s=5)) as (client, server, clock):
        remaining = [int(client.get("/api/v2/deals").headers["x-ratelimit-remaining"]) for _ in range(5)]
        assert remaining == [4, 3, 2, 1, 0]
        over = client.get("/api/v2/deals")
        assert over.status_code == 429
        assert over.json() == {"success": False, "error": "Request over limit", "code": "ERR_RATE_LIMIT_EXCEEDED"}
        assert over.headers["retry-after"] == "2" and over.headers["x-ratelimit-remaining"] == "0"
        assert over.headers["x-ratelimit-limit"] == "5" and over.headers["x-ratelimit-reset"] == "2"
        other = httpx.get(f"{server.url}/api/v2/deals", headers={"x-api-token": SECOND_TOKEN})
        assert other.status_code == 200  # burst windows are per token
        clock.now += 2.01
        assert client.get("/api/v2/deals").status_code == 200


def test_search_has_its_own_window() -> None:
    with sandbox(PipedrivePlan(search_burst_per_2s=2)) as (client, _, clock):
        for _ in range(2):
            assert client.get("/api/v2/itemSearch", params={"term": "abc"}).status_code == 200
        over = client.get("/api/v2/persons/search", params={"term": "abc"})
        assert over.status_code == 429 and over.headers["x-ratelimit-limit"] == "2"
        assert client.get("/api/v2/persons").status_code == 200
        clock.now += 2.01
        assert client.get("/api/v2/persons/search", params={"term": "abc"}).status_code == 200


def test_daily_budget_429_names_the_reset_and_resets_at_midnight_or_on_request() -> None:
    with sandbox(PipedrivePlan(daily_token_budget=30)) as (client, server, clock):
        for _ in range(3):
            assert client.get("/api/v2/deals").status_code == 200
        spent = client.get("/api/v2/deals")
        assert spent.status_code == 429
        assert spent.headers["x-daily-ratelimit-token-remaining"] == "0"
        assert "2026-01-02T00:00:00Z" in spent.json()["error"]
        assert "retry-after" not in spent.headers
        assert httpx.post(f"{server.url}/_sandbox/budget/reset").json()["daily_remaining"] == 30
        for _ in range(3):
            assert client.get("/api/v2/deals").status_code == 200
        assert client.get("/api/v2/deals").status_code == 429
        clock.now = MIDNIGHT + 86_400 + 1
        assert client.get("/api/v2/deals").headers["x-daily-ratelimit-token-remaining"] == "20"


def test_hammering_after_429_earns_an_html_403_block() -> None:
    with sandbox(PipedrivePlan(burst_per_2s=2), block_seconds=30.0) as (client, _, clock):
        statuses = [client.get("/api/v2/deals").status_code for _ in range(2 + 6)]
        assert statuses == [200, 200] + [429] * 6
        blocked = client.get("/api/v2/deals")
        assert blocked.status_code == 403
        assert blocked.headers["content-type"].startswith("text/html")
        assert "Cloudflare" in blocked.text
        clock.now += 5
        assert client.get("/api/v2/deals").status_code == 403
        clock.now += 30
        assert client.get("/api/v2/deals").status_code == 200


def test_faulted_write_applied_then_502_or_refused_with_503() -> None:
    with sandbox(PipedrivePlan()) as (client, server, _):
        def organizations() -> list[str]:
            return [o["name"] for o in httpx.get(f"{server.url}/_sandbox/snapshot").json()["organizations"]]
        options = httpx.post(f"{server.url}/_sandbox/options", json={"fault_rate": 1.0, "applied_fault_share": 1.0})
        assert options.status_code == 200
        in_doubt = client.post("/api/v2/organizations", json={"name": "In doubt"})
        assert in_doubt.status_code == 502 and in_doubt.headers["content-type"].startswith("text/html")
        assert organizations() == ["In doubt"]
        httpx.post(f"{server.url}/_sandbox/options", json={"applied_fault_share": 0.0})
        refused = client.post("/api/v2/organizations", json={"name": "Refused"})
        assert refused.status_code == 503 and refused.json()["success"] is False
        assert organizations() == ["In doubt"]
        assert client.get("/api/v2/organizations").status_code == 503
        httpx.post(f"{server.url}/_sandbox/options", json={"fault_rate": 0.0})
        assert client.get("/api/v2/organizations").status_code == 200


def test_fault_rate_is_a_share_of_requests() -> None:
    with sandbox(PipedrivePlan(burst_per_2s=1000), fault_rate=0.3) as (client, _, _):
        statuses = [client.get("/api/v2/pipelines").status_code for _ in range(200)]
        assert 30 <= statuses.count(503) <= 90 and statuses.count(200) + statuses.count(503) == 200


def test_latency_is_added_to_every_answer() -> None:
    with sandbox(PipedrivePlan()) as (client, server, _):
        server.app.state.simulator.set_options(latency_ms=150)
        started = time.perf_counter()
        assert client.get("/api/v2/pipelines").status_code == 200
        assert time.perf_counter() - started >= 0.15


def test_plan_limits_can_be_changed_at_run_time() -> None:
    with sandbox(PipedrivePlan()) as (client, server, _):
        assert httpx.post(f"{server.url}/_sandbox/plan", json={"burst_per_2s": 1}).status_code == 200
        assert client.get("/api/v2/deals").status_code == 200
        assert client.get("/api/v2/deals").status_code == 429
        assert httpx.post(f"{server.url}/_sandbox/plan", json={"no_such": 1}).status_code == 400


def test_synthetic_seed_is_served() -> None:
    synthetic = pytest.importorskip("migration_pipeline.sandbox.synthetic")
    seed = synthetic.generate(records=500).pipedrive
    token = next(iter(seed.api_tokens))
    with LoopbackServer(create_app(seed)) as server, httpx.Client(base_url=server.url,
                                                                  headers={"x-api-token": token}) as client:
        assert client.get("/v1/users/me").json()["data"]["id"] == seed.api_tokens[token]
        assert len(client.get("/api/v2/pipelines").json()["data"]) == len(seed.pipelines)
        created = client.post("/api/v2/deals", json={"title": "From synthetic"})
        assert created.status_code == 200, created.text
