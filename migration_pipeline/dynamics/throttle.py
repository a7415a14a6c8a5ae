"""The shared "paused until" gate that makes a throttled identity stop as a whole.

Dataverse counts its service-protection limits per application user, and a client that keeps
sending while throttled only earns longer `Retry-After` periods. So when one request gets a
429, every worker using the same identity must hold off, not just the one that was told.
All requests of one identity consult one `PauseGate` before they are sent; `shared_gate` hands
out that gate per (authority, tenant, client id), so separate clients in separate threads of
one process still pause together.

The gate's state is a single deadline guarded by a `threading.Lock` that is never held while
sleeping or awaiting, so it is safe from threads and from asyncio tasks alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class PauseGate:
    """A deadline before which no request of one identity may be sent."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request back for `seconds` from now; a pause never shortens a longer one."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))

    def remaining(self) -> float:
        """Seconds until requests may be sent again (0 when not paused)."""
        with self._lock:
            return max(self._paused_until - self._clock(), 0.0)

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block the calling thread until the gate is open; returns the seconds waited.

        Loops because another worker may extend the pause while this one sleeps.
        """
        waited = 0.0
        while (delay := self.remaining()) > 0:
            sleep(delay)
            waited += delay
        return waited

    async def wait_async(self) -> float:
        """The asyncio twin of `wait`: suspends the task, never the event loop."""
        waited = 0.0
        while (delay := self.remaining()) > 0:
            await asyncio.sleep(delay)
            waited += delay
        return waited


_gates: dict[tuple[str, str, str], PauseGate] = {}
_gates_lock = threading.Lock()


def shared_gate(authority_url: str, tenant_id: str, client_id: str) -> PauseGate:
    """The one gate of this process for the identity (authority, tenant, client id)."""
    key = (authority_url.rstrip("/").lower(), tenant_id.lower(), client_id.lower())
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = PauseGate()
        return gate
