"""Pacing arithmetic with an injected clock: no test here waits for real time."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from migration_pipeline.pipedrive.ratelimit import (
    RateLimitHeaders,
    RollingWindowLimiter,
    TokenPool,
    retry_delay,
)


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(time: FakeTime, limit: int = 20, **options) -> RollingWindowLimiter:
    return RollingWindowLimiter(limit, window=2.0, clock=time.clock, sleep=time.sleep, **options)


def answer(window: RollingWindowLimiter, headers: RateLimitHeaders | None) -> None:
    """One request through `window`, answered at once with `headers`."""

    async def request() -> None:
        window.settle(await window.acquire(), headers)

    asyncio.run(request())


def test_headers_are_parsed_leniently() -> None:
    headers = RateLimitHeaders.parse(
        {
            "x-ratelimit-limit": "40",
            "x-ratelimit-remaining": "3",
            "x-ratelimit-reset": "2",
            "retry-after": "abc",
            "x-daily-ratelimit-token-limit": "1500000",
            "x-daily-ratelimit-token-remaining": "0",
            "x-daily-requests-left": "9999",
        }
    )
    assert headers == RateLimitHeaders(40, 3, 2.0, None, 1_500_000, 0, 9999)
    assert RateLimitHeaders.parse({}) == RateLimitHeaders()


def test_reset_as_a_unix_timestamp_and_retry_after_as_an_http_date_become_seconds() -> None:
    now = 1_800_000_000.0
    headers = RateLimitHeaders.parse(
        {"x-ratelimit-reset": str(now + 5), "retry-after": "Fri, 15 Jan 2027 08:00:10 GMT"},
        now=datetime(2027, 1, 15, 8, 0, 0, tzinfo=timezone.utc).timestamp(),
    )
    assert headers.retry_after == pytest.approx(10.0)
    assert RateLimitHeaders.parse({"x-ratelimit-reset": str(now + 5)}, now=now).reset == pytest.approx(5.0)


def test_wait_hint_is_the_longer_of_the_two_server_hints() -> None:
    assert RateLimitHeaders(reset=2.0, retry_after=7.0).wait_hint == 7.0
    assert RateLimitHeaders(reset=2.0).wait_hint == 2.0
    assert RateLimitHeaders().wait_hint is None


def test_retry_delay_grows_exponentially_up_to_the_cap_and_honours_the_hint() -> None:
    no_jitter = lambda: 0.0  # noqa: E731
    assert [retry_delay(n, base=0.5, cap=3.0, rand=no_jitter) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retry_delay(1, base=0.5, cap=3.0, hint=10.0, rand=no_jitter) == 10.0
    assert retry_delay(3, base=0.5, cap=3.0, hint=0.1, rand=no_jitter) == 2.0
    assert retry_delay(1, base=1.0, cap=3.0, rand=lambda: 1.0) == 1.25  # at most +25 % jitter


def test_capacity_is_the_announced_limit_less_the_reserve() -> None:
    time = FakeTime()
    window = limiter(time)
    assert window.capacity == 19
    answer(window, RateLimitHeaders(limit=10))
    assert window.capacity == 9
    answer(window, RateLimitHeaders(limit=100))
    assert window.capacity == 99
    answer(window, RateLimitHeaders(limit=1))
    assert window.capacity == 1
    assert limiter(time, limit=100, reserve=0).capacity == 100
    assert limiter(time, limit=1, reserve=2).capacity == 1  # never zero


def test_delay_frees_a_place_one_window_after_the_oldest_answer() -> None:
    time = FakeTime()
    window = limiter(time, limit=4, reserve=0)
    window._known.set()

    async def four() -> None:
        for offset in (0.0, 0.1, 0.2, 0.3):
            time.now = 1000.0 + offset
            window.settle(await window.acquire(), None)

    asyncio.run(four())
    assert window.delay(1000.3) == pytest.approx(1.7)  # the answer at 1000.0 leaves at 1002.0
    assert window.delay(1002.0) == 0.0
    assert window.in_window(1002.0) == 3


def test_a_request_in_flight_holds_its_place_however_long_it_takes() -> None:
    time = FakeTime()
    window = limiter(time, limit=2, reserve=0)
    window._known.set()

    async def scenario() -> None:
        slow = await window.acquire()  # sent at 1000.0, answered only at 1009.0
        window.settle(await window.acquire(), None)  # answered at once
        assert window.delay(time.now) == pytest.approx(2.0)
        time.now += 5.0  # a window and more later, the slow one still holds its place
        assert window.in_window(time.now) == 1 and window.delay(time.now) == 0.0
        await window.acquire()  # the window is now full of requests in flight
        assert window.delay(time.now) == math.inf and window.in_flight == 2
        time.now += 4.0
        window.settle(slow, None)
        assert window.delay(time.now) == pytest.approx(2.0)  # counted from its answer, whenever it left

    asyncio.run(scenario())


def test_a_caller_waiting_on_requests_in_flight_goes_one_window_after_the_first_answer() -> None:
    time = FakeTime()
    window = limiter(time, limit=1, reserve=0)
    window._known.set()

    async def scenario() -> float:
        first = await window.acquire()
        waiting = asyncio.create_task(window.acquire())
        await asyncio.sleep(0)
        assert not waiting.done() and time.slept == []  # nothing to sleep on: it waits for the answer
        time.now += 0.7
        window.settle(first, None)
        await waiting
        return time.now

    assert asyncio.run(scenario()) == pytest.approx(1000.0 + 0.7 + 2.0)


def test_acquire_never_lets_more_than_capacity_into_any_window() -> None:
    time = FakeTime()
    window = limiter(time, limit=10)
    answer(window, RateLimitHeaders(limit=10))

    async def take(n: int) -> list[float]:
        stamps = []
        for _ in range(n):
            window.settle(await window.acquire(), None)
            stamps.append(time.now)
        return stamps

    stamps = asyncio.run(take(40))
    for index, start in enumerate(stamps):
        assert sum(1 for stamp in stamps[index:] if stamp < start + 2.0) <= 9
    assert stamps[-1] - stamps[0] >= 2.0 * (40 // 9) - 0.001


@pytest.mark.parametrize("seed", range(20))
def test_the_server_never_counts_more_than_its_limit_whenever_it_counts_a_request(seed: int) -> None:
    """Workers send through the limiter; each request takes a random time, and the server counts it at a
    random instant between its send and its answer (in-order or not). The server's window never overflows."""
    rng = random.Random(seed)
    limit, workers, requests = rng.choice([(5, 8, 60), (10, 4, 80), (20, 16, 150), (100, 24, 600)])
    time = FakeTime()
    window = limiter(time, limit=limit, reserve=0)  # not even one place of margin
    window._known.set()
    arrivals: list[float] = []
    # Discrete events: (when, kind, worker). A worker asks for a place only when `delay` says one is free,
    # so the fake clock never jumps over an answer that is due first.
    events: list[tuple[float, int, int]] = [(time.now, 1, worker) for worker in range(workers)]
    in_flight: dict[int, tuple[float, float]] = {}
    sent = 0
    waiting: list[int] = []

    async def run() -> None:
        nonlocal sent
        while events:
            events.sort()
            when, kind, worker = events.pop(0)
            time.now = max(time.now, when)
            if kind == 0:  # the answer of `worker`'s request, with the server's count when it arrived
                stamp, arrival = in_flight.pop(worker)
                counted = sum(1 for other in arrivals if arrival - 2.0 < other <= arrival)
                window.settle(stamp, RateLimitHeaders(limit=limit, remaining=limit - counted, reset=1))
                assert window.available(time.now) == limit  # its own requests are never taken for someone else's
                events.extend((time.now, 1, other) for other in waiting)
                waiting.clear()
                if sent < requests:
                    events.append((time.now, 1, worker))
                continue
            if sent >= requests:
                continue
            wait = window.delay(time.now)
            if wait == math.inf:
                waiting.append(worker)
                continue
            if wait > 0:
                events.append((time.now + wait, 1, worker))
                continue
            stamp = await window.acquire()
            assert time.slept == []
            sent += 1
            trip = rng.choice([0.001, 0.05, 0.3, 1.0, 2.5, 4.0]) * rng.random()
            arrivals.append(stamp + rng.random() * trip)
            in_flight[worker] = (stamp, arrivals[-1])
            events.append((stamp + trip, 0, worker))

    asyncio.run(run())
    assert sent == requests
    arrivals.sort()
    for index, arrival in enumerate(arrivals):
        # The simulator's rule: a request counts while it is less than a window old.
        counted = sum(1 for other in arrivals[: index + 1] if other > arrival - 2.0)
        assert counted <= limit


def test_places_other_programs_hold_on_the_token_are_left_to_them_for_a_window() -> None:
    time = FakeTime()
    window = limiter(time, limit=10)
    # Our one request was counted with 4 others': someone else holds 4 places.
    answer(window, RateLimitHeaders(limit=10, remaining=5))
    assert window.available(time.now) == 9 - 4 and window.in_window(time.now) == 1
    assert window.delay(time.now) == 0.0
    time.now += 2.0  # a window later they are gone, unless an answer shows them again
    assert window.available(time.now) == 9


def test_a_server_window_filled_by_our_own_requests_needs_no_pause() -> None:
    time = FakeTime()
    window = limiter(time, limit=3, reserve=0)
    window._known.set()

    async def three() -> None:
        permits = [await window.acquire() for _ in range(3)]
        for remaining, permit in zip((2, 1, 0), permits, strict=True):
            window.settle(permit, RateLimitHeaders(limit=3, remaining=remaining, reset=2))

    asyncio.run(three())
    assert window.available(time.now) == 3
    assert window.delay(time.now) == pytest.approx(2.0)  # the count frees places itself: no pause on top
    time.now += 2.0
    assert window.delay(time.now) == 0.0


def test_pause_and_an_empty_server_window_stop_every_caller() -> None:
    time = FakeTime()
    window = limiter(time)
    window.pause(3.0)
    assert window.delay(time.now) == pytest.approx(3.0)
    window.pause(1.0)  # a shorter pause never shortens a longer one
    assert window.delay(time.now) == pytest.approx(3.0)
    fresh = limiter(time)
    answer(fresh, RateLimitHeaders(limit=40, remaining=0, reset=1.5))  # 39 of the 40 are someone else's
    assert fresh._paused_until - time.now == pytest.approx(1.5)
    assert fresh.available(time.now) == 1 and fresh.delay(time.now) == pytest.approx(2.0)  # and ours holds the last


def test_one_probe_until_the_first_answer_teaches_the_ceiling() -> None:
    async def scenario() -> list[str]:
        window = RollingWindowLimiter(20, window=2.0)
        events: list[str] = []

        async def caller(name: str) -> None:
            await window.acquire()
            events.append(name)

        probe = asyncio.create_task(caller("probe"))
        others = [asyncio.create_task(caller(f"c{n}")) for n in range(3)]
        await asyncio.sleep(0.01)
        assert events == ["probe"] and not window.learned
        window.settle(0.0, RateLimitHeaders(limit=10))
        await asyncio.gather(probe, *others)
        return events

    assert asyncio.run(scenario()) == ["probe", "c0", "c1", "c2"]


def test_a_probe_without_an_answer_releases_the_others_at_the_default_ceiling() -> None:
    time = FakeTime()
    window = limiter(time)
    answer(window, None)
    assert window.learned and window.capacity == 19


def test_the_pool_spreads_requests_over_tokens_and_avoids_a_paused_one() -> None:
    time = FakeTime()
    pool = TokenPool([SecretStr("secret-token-one"), SecretStr("secret-token-two")], window=2.0, clock=time.clock, sleep=time.sleep)

    async def send(n: int) -> list[int]:
        permits = [await pool.acquire() for _ in range(n)]
        for permit in permits:
            permit.settle(RateLimitHeaders(limit=10))
        return [permit.lane.index for permit in permits]

    assert asyncio.run(send(2)) == [0, 1]  # one probe per token
    time.now += 2.0
    used = asyncio.run(send(18))
    assert used.count(0) == 9 and used.count(1) == 9
    assert time.slept == []  # two tokens carry 18 requests in one window without waiting
    pool.lanes[0].pause(5.0)
    time.now += 2.0
    assert pool.choose().index == 1
    assert "secret" not in repr(pool.lanes[0]) and pool.lanes[0].label == "token 1"


def test_search_answers_do_not_teach_the_burst_ceiling() -> None:
    time = FakeTime()
    pool = TokenPool([SecretStr("a")], window=2.0, clock=time.clock, sleep=time.sleep)

    async def search() -> None:
        permit = await pool.acquire(search=True)
        permit.settle(RateLimitHeaders(limit=10, remaining=0, reset=2))

    asyncio.run(search())
    lane = pool.lanes[0]
    assert lane.burst.learned and lane.burst.limit == 20 and lane.burst.delay(time.now) == 0
    assert lane.search.capacity == 9 and lane.search.in_window(time.now) == 1


def test_a_request_holds_its_place_until_its_answer_arrives() -> None:
    time = FakeTime()
    window = limiter(time, limit=1, reserve=0)

    async def scenario() -> None:
        window.settle(await window.acquire(), RateLimitHeaders(limit=1))  # at 1000.0
        slow = await window.acquire()  # waits for the window: sent at 1002.0 ...
        assert time.now == pytest.approx(1002.0)
        time.now += 1.5
        window.settle(slow, None)  # ... answered at 1003.5

    asyncio.run(scenario())
    # Counted from its answer, the slow request keeps its place until 1005.5, not 1004.0.
    assert window.delay(1004.1) == pytest.approx(1005.5 - 1004.1)


def test_a_search_caller_cancelled_while_waiting_for_the_burst_window_gives_its_search_place_back() -> None:
    async def scenario() -> None:
        pool = TokenPool([SecretStr("a")], window=2.0)
        lane = pool.lanes[0]
        lane.burst._known.set()
        lane.burst.pause(60.0)  # the burst window is closed: the caller holds a search place and waits
        waiting = asyncio.create_task(pool.acquire(search=True))
        await asyncio.sleep(0.01)
        assert lane.search.in_flight == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert lane.search.in_flight == 0 and lane.burst.in_flight == 0

    asyncio.run(scenario())


def test_a_client_sharing_its_token_with_another_program_leaves_it_its_places(company) -> None:
    """Against the simulator: another integration holds 6 of 10 places when the load starts."""
    from migration_pipeline.sandbox.dataset import PipedrivePlan
    from migration_pipeline_tests.test_pipedrive.conftest import ADMIN_TOKEN

    sandbox = company(PipedrivePlan(burst_per_2s=10))
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": ADMIN_TOKEN}) as other_integration:
        for _ in range(6):
            assert other_integration.get("/api/v2/pipelines").status_code == 200

    async def work(client) -> None:
        await asyncio.gather(*(client.request("GET", "stages", version="v2") for _ in range(12)))

    _, client = sandbox.run(work)
    assert client.usage.rate_limited == 0 and client.usage.requests == 12
