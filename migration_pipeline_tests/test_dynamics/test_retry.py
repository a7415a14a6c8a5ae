"""Retry-After parsing, backoff, and which failures are retried."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from migration_pipeline.dynamics.retry import RetryPolicy, TransientResponse, parse_retry_after, raise_if_transient
from migration_pipeline.dynamics.throttle import PauseGate


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://127.0.0.1/api/data/v9.2/accounts"))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 2 ", 2.0), ("0.5", 0.5), ("-3", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt: int) -> None:
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=60.0)
    ceiling = min(60.0, 2 ** (attempt - 1))
    for _ in range(50):
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_raise(status: int) -> None:
    with pytest.raises(TransientResponse):
        raise_if_transient(response(status))


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 500])
def test_other_statuses_pass_through(status: int) -> None:
    assert raise_if_transient(response(status)).status_code == status


def run(policy: RetryPolicy, outcomes: list[httpx.Response | Exception], gate: PauseGate | None = None) -> tuple[httpx.Response, int]:
    calls = 0
    for attempt in policy.retrying(gate):
        with attempt:
            outcome = outcomes[calls]
            calls += 1
            if isinstance(outcome, Exception):
                raise outcome
            result = raise_if_transient(outcome)
    return result, calls


def test_a_throttled_request_pauses_the_gate_for_retry_after() -> None:
    gate = PauseGate()
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.01)
    result, calls = run(policy, [response(429, {"Retry-After": "30"}), response(200)], gate)
    assert (result.status_code, calls) == (200, 2)
    # The retry did not sleep 30 s itself: the pause is on the shared gate, for every worker.
    assert 29 < gate.remaining() <= 30


def test_network_errors_and_gateway_errors_are_retried() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    outcomes: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("dropped", request=request),
        response(503),
        response(200),
    ]
    result, calls = run(RetryPolicy(max_attempts=5, backoff_initial=0.001), outcomes)
    assert (result.status_code, calls) == (200, 5)


def test_attempts_are_bounded_and_the_last_failure_is_raised() -> None:
    with pytest.raises(TransientResponse) as caught:
        run(RetryPolicy(max_attempts=3, backoff_initial=0.001), [response(503)] * 5)
    assert caught.value.response.status_code == 503


def test_nothing_listening_gives_up_after_a_few_quick_attempts() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    refused = [httpx.ConnectError("refused", request=request)] * 8
    with pytest.raises(httpx.ConnectError):
        run(RetryPolicy(max_attempts=8, connect_attempts=3, backoff_initial=0.001), refused)
    # One refusal among other transient failures does not shorten the budget of the rest.
    _, calls = run(RetryPolicy(max_attempts=8, connect_attempts=3, backoff_initial=0.001), [response(503)] * 5 + [response(200)])
    assert calls == 6


def test_programming_errors_are_not_retried() -> None:
    calls = 0
    with pytest.raises(KeyError):
        for attempt in RetryPolicy(max_attempts=5, backoff_initial=0.001).retrying():
            with attempt:
                calls += 1
                raise KeyError("bug")
    assert calls == 1


def test_retry_after_on_an_outage_is_obeyed_by_the_failing_worker_only() -> None:
    gate = PauseGate()
    policy = RetryPolicy(max_attempts=2, backoff_initial=30.0)
    started = time.monotonic()
    result, calls = run(policy, [response(503, {"Retry-After": "0.2"}), response(200)], gate)
    assert (result.status_code, calls) == (200, 2)
    assert 0.19 <= time.monotonic() - started < 5  # Retry-After, not the 15..30 s backoff
    assert gate.remaining() == 0
