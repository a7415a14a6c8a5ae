"""Pipedrive's token-based rate limits: a company-wide daily budget and per-token bursts.

- Every operation costs its `x-token-cost`; the company's daily budget is shared by all
  tokens and resets at midnight UTC (by the injected clock).
- Each token may make `burst_per_2s` requests per rolling 2-second window, and search
  requests additionally count against a separate `search_burst_per_2s` window.
- A token that keeps calling after 429s (more than `penalty_factor` x its burst in the
  penalty window) is blocked for a while and receives an HTML 403, as Cloudflare does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from migration_pipeline.sandbox.dataset import PipedrivePlan

SECONDS_PER_DAY = 86_400


class Verdict(Enum):
    OK = "ok"
    BURST = "burst"
    SEARCH_BURST = "search_burst"
    BUDGET = "budget"
    BLOCKED = "blocked"


@dataclass
class Decision:
    verdict: Verdict
    limit: int  # the burst ceiling reported in x-ratelimit-limit
    remaining: int
    reset_s: int  # seconds until the burst window frees a slot
    daily_limit: int
    daily_remaining: int
    retry_after_s: int = 0


@dataclass
class _TokenState:
    requests: deque[float] = field(default_factory=deque)
    searches: deque[float] = field(default_factory=deque)
    rejections: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


def _trim(window: deque[float], since: float) -> None:
    while window and window[0] <= since:
        window.popleft()


class RateLimiter:
    def __init__(self, plan: PipedrivePlan, clock: Callable[[], float], window_s: float = 2.0,
                 penalty_window_s: float = 10.0, penalty_factor: float = 3.0, block_seconds: float = 60.0) -> None:
        self.plan = plan
        self.clock = clock
        self.window_s = window_s
        self.penalty_window_s = penalty_window_s
        self.penalty_factor = penalty_factor
        self.block_seconds = block_seconds
        self.tokens_used = 0
        self._day = self._today()
        self._tokens: dict[str, _TokenState] = {}

    def _today(self) -> int:
        return int(self.clock() // SECONDS_PER_DAY)

    def seconds_to_reset(self) -> int:
        now = self.clock()
        return max(1, math.ceil((math.floor(now / SECONDS_PER_DAY) + 1) * SECONDS_PER_DAY - now))

    def reset_budget(self) -> None:
        self.tokens_used = 0
        self._day = self._today()

    def reset_bursts(self) -> None:
        self._tokens.clear()

    def daily_remaining(self) -> int:
        self._roll_day()
        return max(0, self.plan.daily_token_budget - self.tokens_used)

    def _roll_day(self) -> None:
        if self._today() != self._day:
            self.reset_budget()

    def _decision(self, verdict: Verdict, state: _TokenState, now: float, is_search: bool,
                  retry_after: int = 0) -> Decision:
        window = state.searches if is_search else state.requests
        limit = self.plan.search_burst_per_2s if is_search else self.plan.burst_per_2s
        _trim(window, now - self.window_s)
        reset = math.ceil(window[0] + self.window_s - now) if window else 0
        return Decision(verdict, limit, max(0, limit - len(window)), max(0, reset),
                        self.plan.daily_token_budget, self.daily_remaining(), retry_after)

    def admit(self, token: str, cost: int, is_search: bool = False) -> Decision:
        """Decide on one request and, when admitted, count it and charge its tokens."""
        now = self.clock()
        self._roll_day()
        state = self._tokens.setdefault(token, _TokenState())
        if state.blocked_until > now:
            return self._decision(Verdict.BLOCKED, state, now, is_search, math.ceil(state.blocked_until - now))
        _trim(state.requests, now - self.window_s)
        _trim(state.searches, now - self.window_s)
        verdict = Verdict.OK
        if len(state.requests) >= self.plan.burst_per_2s:
            verdict = Verdict.BURST
        elif is_search and len(state.searches) >= self.plan.search_burst_per_2s:
            verdict = Verdict.SEARCH_BURST
        elif self.tokens_used + cost > self.plan.daily_token_budget:
            verdict = Verdict.BUDGET
        if verdict is not Verdict.OK:
            return self._reject(verdict, state, now, is_search)
        state.requests.append(now)
        if is_search:
            state.searches.append(now)
        self.tokens_used += cost
        return self._decision(Verdict.OK, state, now, is_search)

    def _reject(self, verdict: Verdict, state: _TokenState, now: float, is_search: bool) -> Decision:
        state.rejections.append(now)
        _trim(state.rejections, now - self.penalty_window_s)
        if len(state.rejections) > self.penalty_factor * self.plan.burst_per_2s:
            state.blocked_until = now + self.block_seconds
            state.rejections.clear()
            return self._decision(Verdict.BLOCKED, state, now, is_search, math.ceil(self.block_seconds))
        decision = self._decision(verdict, state, now, is_search)
        decision.retry_after_s = self.seconds_to_reset() if verdict is Verdict.BUDGET else max(1, decision.reset_s)
        return decision
