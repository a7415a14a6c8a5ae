"""Injected failures: "answer the next N requests under this path with 429/503", or a rate.

Faults are answered before authentication, the way a gateway in front of the service
fails, and do not count against the service-protection window.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    status: int
    retry_after: int | None


@dataclass
class _Rule:
    path_prefix: str
    fault: Fault
    remaining: int


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._rules: list[_Rule] = []
        self._rate = 0.0
        self._rate_fault = Fault(503, None)
        self._rate_prefix = "/api/"
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, path_prefix: str, status: int, count: int, retry_after: int | None = None) -> None:
        """The next `count` requests whose path starts with `path_prefix` fail with `status`."""
        with self._lock:
            self._rules.append(_Rule(path_prefix, Fault(status, retry_after), count))

    def set_rate(self, rate: float, status: int = 503, path_prefix: str = "/api/", retry_after: int | None = None) -> None:
        """Each matching request fails with probability `rate` (seeded, so runs replay)."""
        with self._lock:
            self._rate = rate
            self._rate_fault = Fault(status, retry_after)
            self._rate_prefix = path_prefix

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._rate = 0.0

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and path.startswith(rule.path_prefix):
                    rule.remaining -= 1
                    return rule.fault
            self._rules = [rule for rule in self._rules if rule.remaining > 0]
            if self._rate and path.startswith(self._rate_prefix) and self._random.random() < self._rate:
                return self._rate_fault
            return None
