"""Service protection: a sliding-window request counter per identity.

Like Dataverse, the limit is checked when a request arrives: the first request over the
limit gets 429 with `Retry-After` set to when the oldest counted request leaves the window,
and every request sent while throttled pushes that moment further out (by
`penalty_seconds`), so clients that ignore Retry-After are punished, not rewarded.
Throttled requests are not counted in the window themselves.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Identity:
    recent: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class Limiter:
    def __init__(self, limit: int, window_seconds: float, penalty_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.penalty_seconds = penalty_seconds
        self._clock = clock
        self._identities: dict[str, _Identity] = {}
        self._lock = threading.Lock()

    def admit(self, identity: str) -> int | None:
        """None if the request may proceed (and is counted); else Retry-After in whole seconds."""
        with self._lock:
            now = self._clock()
            state = self._identities.setdefault(identity, _Identity())
            while state.recent and state.recent[0] <= now - self.window_seconds:
                state.recent.popleft()
            if now < state.blocked_until:
                state.blocked_until += self.penalty_seconds
                return _whole_seconds(state.blocked_until - now)
            if len(state.recent) >= self.limit:
                state.blocked_until = state.recent[len(state.recent) - self.limit] + self.window_seconds
                return _whole_seconds(state.blocked_until - now)
            state.recent.append(now)
            return None

    def configure(self, limit: int | None = None, window_seconds: float | None = None, penalty_seconds: float | None = None) -> None:
        with self._lock:
            self.limit = self.limit if limit is None else limit
            self.window_seconds = self.window_seconds if window_seconds is None else window_seconds
            self.penalty_seconds = self.penalty_seconds if penalty_seconds is None else penalty_seconds

    def reset(self) -> None:
        with self._lock:
            self._identities.clear()

    def message(self) -> str:
        return f"Number of requests exceeded the limit of {self.limit} over time window of {self.window_seconds:g} seconds."


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))
