"""Pacing below Pipedrive's burst limits, and how long to wait before a retry.

Pipedrive counts requests per API token in a rolling 2-second window (20 to 120 depending on
the plan, search endpoints 10 on every plan) and answers 429 beyond it. A client that keeps
sending after 429s gets the whole account blocked by Cloudflare, so the pacer's job is to
never get there: each token has a `RollingWindowLimiter` that holds at most `capacity`
places, where a request holds one from the moment it leaves until one window after its answer
(the server counted it somewhere in between), and the capacity is the ceiling the server
announces in `x-ratelimit-limit` less the places other programs on the same token are seen
holding (from `x-ratelimit-remaining`). Until the first answer tells the ceiling,
only one request is let out (a probe), so a burst of concurrent callers cannot overrun a small
plan.

Time is injected (`clock`, `sleep`) so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

WINDOW_SECONDS = 2.0
# Lite, the smallest plan, allows 20 per 2 s per API token: the ceiling assumed until a
# response says otherwise.
DEFAULT_BURST_LIMIT = 20
SEARCH_BURST_LIMIT = 10
# Places of the announced ceiling the pacer leaves unused. Its count is exact for its own
# requests and learns other programs' from `x-ratelimit-remaining` (see `RollingWindowLimiter`),
# so this is no margin for jitter: one place absorbs another program's request before any
# answer has shown that program.
RESERVE = 1

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit headers of one response; any may be absent."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # seconds until the burst window resets
    retry_after: float | None = None
    daily_token_limit: int | None = None
    daily_tokens_remaining: int | None = None
    daily_requests_left: int | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], *, now: float | None = None) -> RateLimitHeaders:
        """Read the headers leniently: a malformed value counts as absent, never as an error."""
        return cls(
            limit=_int(headers.get("x-ratelimit-limit")),
            remaining=_int(headers.get("x-ratelimit-remaining")),
            reset=_seconds(headers.get("x-ratelimit-reset"), now),
            retry_after=_retry_after(headers.get("retry-after"), now),
            daily_token_limit=_int(headers.get("x-daily-ratelimit-token-limit")),
            daily_tokens_remaining=_int(headers.get("x-daily-ratelimit-token-remaining")),
            daily_requests_left=_int(headers.get("x-daily-requests-left")),
        )

    @property
    def wait_hint(self) -> float | None:
        """How long the server asks us to wait, if it says: the longer of its two hints."""
        hints = [value for value in (self.retry_after, self.reset) if value is not None]
        return max(hints) if hints else None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _seconds(value: str | None, now: float | None) -> float | None:
    """Seconds from now; a value that looks like a Unix timestamp is turned into seconds."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    if number is None:
        return None
    if number > 1_000_000_000:
        number -= time.time() if now is None else now
    return max(0.0, number)


def _retry_after(value: str | None, now: float | None) -> float | None:
    """`Retry-After` is seconds or an HTTP date."""
    seconds = _seconds(value, now)
    if seconds is not None or value is None:
        return seconds
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    hint: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    Exponential (`base`, `2 base`, `4 base`, ... up to `cap`), never shorter than what the
    server asked for (`hint`), plus up to 25 % jitter so that concurrent callers that
    failed together do not come back together.
    """
    delay = max(min(cap, base * 2 ** (attempt - 1)), hint or 0.0)
    return delay * (1.0 + 0.25 * rand())


class RollingWindowLimiter:
    """At most `capacity` requests in any `window` seconds, learning the ceiling from headers.

    The server counts a request at the moment it arrives, which the client cannot see: it
    lies somewhere between the send and the answer. So a request holds its place from the
    moment it is let out (it is *in flight*) until `window` seconds after its answer (or its
    failure) is in. A new request arriving at the server at any time after now can then
    only find there the requests this window counts: one answered before `now - window`
    arrived before that, whatever the latency or how late the event loop sent it. This is
    exact, not a guess, so no share of the ceiling is given up to jitter or to windows that
    are not aligned: the capacity is the announced ceiling less `reserve` places (one by
    default, see `RESERVE`).

    What the client cannot count is other programs on the same token. Each answer tells how
    full the server's window was when it counted the request (`x-ratelimit-limit` less
    `x-ratelimit-remaining`); whatever exceeds the most this client's own requests could
    explain is someone else's, and that many places are left to them for a window. An
    exhausted server window (`x-ratelimit-remaining: 0`) with such foreign traffic in it, or
    a 429, pauses every caller until the server's reset; one filled by this client's own
    requests needs no pause, the count already waits exactly as long as needed.

    In steady state a request costs `window + round trip` of one place, so one token carries
    `capacity / (window + round trip)` requests a second.
    """

    def __init__(
        self,
        limit: int = DEFAULT_BURST_LIMIT,
        *,
        window: float = WINDOW_SECONDS,
        reserve: int = RESERVE,
        learn: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if reserve < 0:
            raise ValueError("reserve must not be negative")
        self.window = window
        self.reserve = reserve
        self.limit = limit
        self._learn = learn
        self._clock = clock
        self._sleep = sleep
        self._answered: list[float] = []  # sorted answer stamps of finished requests, kept for two windows
        self._foreign = 0  # places other programs were seen holding ...
        self._foreign_until = 0.0  # ... until then
        self._in_flight = 0  # let out, not answered yet: each holds a place until its answer is in
        self._paused_until = 0.0
        # Until a response announces the ceiling, one probe at a time (see the module doc).
        self._known = asyncio.Event()
        if not learn:
            self._known.set()
        self._probe_out = False
        self._queued = 0
        self._lock = asyncio.Lock()
        self._settled = asyncio.Event()  # set by each answer: wakes a caller waiting on requests in flight

    @property
    def capacity(self) -> int:
        return max(1, self.limit - self.reserve)

    @property
    def learned(self) -> bool:
        return self._known.is_set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def available(self, now: float) -> int:
        """The places this client may hold at `now`: the capacity less what other programs were seen holding."""
        foreign = self._foreign if now < self._foreign_until else 0
        return max(1, self.capacity - foreign)

    def _held_since(self, since: float) -> int:
        """This client's requests in flight or answered after `since`."""
        return self._in_flight + len(self._answered) - bisect.bisect_right(self._answered, since)

    def delay(self, now: float) -> float:
        """Seconds until one more request fits (0: now; `math.inf`: not before an answer is in). Records nothing."""
        del self._answered[: bisect.bisect_right(self._answered, now - 2 * self.window)]
        wait = self._paused_until - now
        first = bisect.bisect_right(self._answered, now - self.window)  # the oldest answer still holding a place
        held = len(self._answered) - first
        excess = self._in_flight + held - self.available(now)  # places to free before one more fits
        if excess >= 0:
            if excess < held:
                wait = max(wait, self._answered[first + excess] + self.window - now)
            else:  # the window is full of requests still in flight: only their answers can start freeing it
                return math.inf
        return max(0.0, wait)

    def in_window(self, now: float) -> int:
        """How many places are held at `now`: requests in flight and those answered in the last window."""
        self.delay(now)
        return self._held_since(now - self.window)

    def load(self, now: float) -> float:
        """How full the window is, counting callers still queued: 1.0 is one full window."""
        return (self.in_window(now) + self._queued) / self.capacity

    async def acquire(self) -> float:
        """Wait for a free place in the window and take it (first come, first served).

        Returns the time it was let out, to hand back to `settle` when the answer arrives.
        Every acquired place must be settled exactly once, answered or not.
        """
        self._queued += 1
        try:
            async with self._lock:
                if not self._known.is_set():
                    if self._probe_out:
                        await self._known.wait()
                    else:
                        self._probe_out = True
                while (wait := self.delay(self._clock())) > 0:
                    if math.isinf(wait):
                        self._settled.clear()
                        await self._settled.wait()
                    else:
                        await self._sleep(wait)
                self._in_flight += 1
                return self._clock()
        finally:
            self._queued -= 1

    def settle(self, stamp: float, headers: RateLimitHeaders | None) -> None:
        """The request let out at `stamp` (what `acquire` returned) is over (answered, failed or
        cancelled): it keeps its place until one window after now. Learn from its headers (None:
        no answer, or one that must not teach this window)."""
        now = self._clock()
        self._in_flight = max(0, self._in_flight - 1)
        # The most of this client's requests the server can have counted with this one: it arrived
        # after `stamp`, so none answered a window before that was still in its window.
        own = self._held_since(stamp - self.window) + 1
        bisect.insort(self._answered, now)
        self._settled.set()
        if headers is not None and self._learn:
            if headers.limit is not None and headers.limit > 0:
                self.limit = headers.limit
            if headers.remaining is not None:
                foreign = self.limit - headers.remaining - own
                if foreign > 0:  # someone else uses this token: leave them their places for a window
                    self._foreign = foreign if now >= self._foreign_until else max(self._foreign, foreign)
                    self._foreign_until = now + self.window
                    if headers.remaining == 0 and headers.reset:
                        self.pause(headers.reset)
        # Whatever the outcome, the probe is over: without headers, keep the default ceiling.
        self._known.set()

    def pause(self, seconds: float) -> None:
        """Stop every caller for `seconds` (after a 429: never hammer a limited token)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


@dataclass
class Permit:
    """The right to send one request on `lane`; `settle` it when the answer (or failure) is in."""

    lane: TokenLane
    search: bool
    burst_stamp: float
    search_stamp: float | None = None

    def settle(self, headers: RateLimitHeaders | None) -> None:
        # A search answer may describe the search window, so it never teaches the burst ceiling.
        self.lane.burst.settle(self.burst_stamp, None if self.search else headers)
        if self.search_stamp is not None:
            self.lane.search.settle(self.search_stamp, None)


class TokenLane:
    """One API token with its own burst limiter and search limiter (both are per token)."""

    def __init__(self, token: SecretStr, index: int, *, window: float, clock: Clock, sleep: Sleep) -> None:
        self.token = token
        self.index = index
        self.burst = RollingWindowLimiter(DEFAULT_BURST_LIMIT, window=window, clock=clock, sleep=sleep)
        self.search = RollingWindowLimiter(SEARCH_BURST_LIMIT, window=window, learn=False, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"TokenLane(index={self.index}, limit={self.burst.limit})"

    @property
    def label(self) -> str:
        """How messages name this token without showing it."""
        return f"token {self.index + 1}"

    async def acquire(self, *, search: bool) -> Permit:
        search_stamp = await self.search.acquire() if search else None
        try:
            burst_stamp = await self.burst.acquire()
        except BaseException:  # cancelled while waiting: give the search place back (it never left)
            if search_stamp is not None:
                self.search.settle(search_stamp, None)
            raise
        return Permit(self, search, burst_stamp, search_stamp)

    def pause(self, seconds: float) -> None:
        self.burst.pause(seconds)
        self.search.pause(seconds)


class TokenPool:
    """Spreads requests over several API tokens: the burst limit is per token.

    Each request goes to the lane that can send soonest, ties broken by the lightest load
    (in the window plus queued), so N tokens give about N times the throughput (the daily
    budget stays shared).
    """

    def __init__(
        self,
        tokens: Sequence[SecretStr],
        *,
        window: float = WINDOW_SECONDS,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not tokens:
            raise ValueError("at least one API token is needed")
        self._clock = clock
        self.lanes = [
            TokenLane(token, index, window=window, clock=clock, sleep=sleep) for index, token in enumerate(tokens)
        ]

    def choose(self, *, search: bool = False) -> TokenLane:
        """The lane to send the next request on. Records nothing."""
        now = self._clock()

        def rank(lane: TokenLane) -> tuple[float, float]:
            limiter = lane.search if search else lane.burst
            return (max(limiter.delay(now), lane.burst.delay(now)), limiter.load(now))

        return min(self.lanes, key=rank)

    async def acquire(self, *, search: bool = False) -> Permit:
        """Wait for a place on the best lane."""
        return await self.choose(search=search).acquire(search=search)
