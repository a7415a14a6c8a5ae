"""Which failures are worth another attempt, and how long to wait before it.

Transient means: throttled (429), a gateway or the service briefly down (502, 503, 504), or
the network failing (connect errors, timeouts, dropped connections). Everything else is
answered at once. The wait is the response's `Retry-After` when it has one, else an
exponential backoff with jitter. A 429 puts that wait on the identity's shared gate, so every
worker waits; other transient failures wait in the failing worker only.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass

import httpx
import tenacity

from migration_pipeline.dynamics.throttle import PauseGate

logger = logging.getLogger(__name__)

THROTTLED = 429
TRANSIENT_STATUSES = frozenset({THROTTLED, 502, 503, 504})
NETWORK_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class TransientResponse(Exception):
    """A response worth retrying; raised inside an attempt so that tenacity sees it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))

    @property
    def throttled(self) -> bool:
        return self.response.status_code == THROTTLED


# What a retry loop catches once its attempts are spent, to turn it into a user-facing error.
RETRYABLE: tuple[type[Exception], ...] = (TransientResponse, *NETWORK_ERRORS)


def raise_if_transient(response: httpx.Response) -> httpx.Response:
    if response.status_code in TRANSIENT_STATUSES:
        raise TransientResponse(response)
    return response


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds (what Dataverse sends) or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff: `backoff_initial`, doubling, capped at `backoff_max`."""

    max_attempts: int = 8
    # Nothing listening is nearly always a wrong URL, not a blip: give up after a few quick tries.
    connect_attempts: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 60.0

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): half fixed, half random.

        The random half spreads out workers that failed together; the fixed half keeps them
        from coming back at once.
        """
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def attempts_for(self, error: BaseException | None) -> int:
        """How many attempts a request gets when it keeps failing with `error`."""
        return self.connect_attempts if isinstance(error, httpx.ConnectError) else self.max_attempts

    def retrying(self, gate: PauseGate | None = None) -> tenacity.Retrying:
        """A tenacity loop for one request; with a `gate`, a 429 pauses the whole identity."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            delay = self.backoff(state.attempt_number)
            if isinstance(error, TransientResponse) and error.retry_after is not None:
                delay = error.retry_after  # the service knows best when it will take requests again
            if gate is not None and isinstance(error, TransientResponse) and error.throttled:
                gate.pause(delay)
                return 0.0  # the next attempt waits at the gate, together with every other worker
            return delay

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "Transient failure (%s), attempt %d of %d; retrying in %.1f s",
                _describe(error),
                state.attempt_number,
                self.attempts_for(error),
                max(state.upcoming_sleep, gate.remaining() if gate is not None else 0.0),
            )

        def stop(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            return state.attempt_number >= self.attempts_for(error)

        return tenacity.Retrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            before_sleep=log_retry,
            reraise=True,
        )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, TransientResponse):
        return f"HTTP {error.response.status_code} from {error.response.request.url.path}"
    return f"{type(error).__name__}: {error}"
