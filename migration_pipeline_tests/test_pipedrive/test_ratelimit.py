"""Pacing arithmetic with an injected clock: no test here waits for real time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

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


def test_capacity_keeps_headroom_below_the_announced_limit() -> None:
    time = FakeTime()
    window = limiter(time)
    assert window.capacity == 18
    answer(window, RateLimitHeaders(limit=10))
    assert window.capacity == 9
    answer(window, RateLimitHeaders(limit=100))
    assert window.capacity == 90
    answer(window, RateLimitHeaders(limit=1))
    assert window.capacity == 1  # never zero


def test_delay_frees_a_place_when_the_oldest_send_leaves_the_window() -> None:
    time = FakeTime()
    window = limiter(time, limit=4, headroom=1.0)
    window._known.set()

    async def four() -> None:
        for offset in (0.0, 0.1, 0.2, 0.3):
            time.now = 1000.0 + offset
            await window.acquire()

    asyncio.run(four())
    assert window.delay(1000.3) == pytest.approx(1.7)  # the send at 1000.0 leaves at 1002.0
    assert window.delay(1002.0) == 0.0
    assert window.in_window(1002.0) == 3


def test_acquire_never_lets_more_than_capacity_into_any_window() -> None:
    time = FakeTime()
    window = limiter(time, limit=10)
    answer(window, RateLimitHeaders(limit=10))

    async def take(n: int) -> list[float]:
        stamps = []
        for _ in range(n):
            await window.acquire()
            stamps.append(time.now)
        return stamps

    stamps = asyncio.run(take(40))
    for index, start in enumerate(stamps):
        assert sum(1 for stamp in stamps[index:] if stamp < start + 2.0) <= 9
    assert stamps[-1] - stamps[0] >= 2.0 * (40 // 9) - 0.001


def test_pause_and_an_empty_server_window_stop_every_caller() -> None:
    time = FakeTime()
    window = limiter(time)
    window.pause(3.0)
    assert window.delay(time.now) == pytest.approx(3.0)
    window.pause(1.0)  # a shorter pause never shortens a longer one
    assert window.delay(time.now) == pytest.approx(3.0)
    fresh = limiter(time)
    answer(fresh, RateLimitHeaders(limit=40, remaining=0, reset=1.5))
    assert fresh.delay(time.now) == pytest.approx(1.5)


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
    assert window.learned and window.capacity == 18


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
    window = limiter(time, limit=1, headroom=1.0)

    async def scenario() -> None:
        window.settle(await window.acquire(), RateLimitHeaders(limit=1))  # at 1000.0
        slow = await window.acquire()  # waits for the window: sent at 1002.0 ...
        assert time.now == pytest.approx(1002.0)
        time.now += 1.5
        window.settle(slow, None)  # ... answered at 1003.5

    asyncio.run(scenario())
    # Counted from its answer, the slow request keeps its place until 1005.5, not 1004.0.
    assert window.delay(1004.1) == pytest.approx(1005.5 - 1004.1)
