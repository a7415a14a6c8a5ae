"""Pipedrive's failures translated into the project's error family (`migration_pipeline.errors`).

Each message says what happened and each hint what to do; none contains an API token (the
client names tokens by position: "token 2"). Two failures get classes of their own because
callers act on them differently:

- `WriteInDoubt`: a create whose outcome is unknown (5xx, timeout, dropped connection).
  Pipedrive may have created the record, so retrying blindly could duplicate it; the
  loader reconciles (reads back by the "Dynamics ID" field or the parent) before resending.
- `DailyBudgetExhausted`: the company's token budget is spent; every further call would be
  refused until the reset, so the run stops and `migrate run` resumes later.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx

from migration_pipeline.errors import (
    ApiError,
    AuthenticationError,
    BudgetExhausted,
    MigrationError,
    PermissionDenied,
    ServiceUnavailable,
)
from migration_pipeline.pipedrive.models import Call, ErrorBody

BUDGET_WORDS = ("daily", "budget")
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z")


class PipedriveApiError(ApiError):
    """Pipedrive refused a request; `error`, `error_info` and `code` are Pipedrive's own."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None,
        error: str | None,
        error_info: str | None,
        method: str,
        path: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, hint=hint)
        self.error = error
        self.error_info = error_info
        self.method = method
        self.path = path


class PlanLimitReached(PermissionDenied):
    """The plan caps this (open deals, custom fields, activity types...): `code` names the cap."""

    def __init__(self, message: str, *, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class TrafficBlocked(ApiError):
    """Cloudflare answers 403 with an HTML page: the account is being blocked for its traffic."""

    default_hint = (
        "Stop every integration using this Pipedrive account now: it kept sending after rate-limit "
        "answers (429). Wait at least an hour before resuming with `migrate run`, with fewer API tokens "
        "or fewer concurrent runs."
    )


class DailyBudgetExhausted(BudgetExhausted):
    """The company's daily token budget is spent; `reset_at` is when it refills (None: unknown)."""

    def __init__(self, message: str, *, reset_at: datetime | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reset_at = reset_at


class WriteInDoubt(ApiError):
    """A non-idempotent write got no clear answer: the record may or may not exist.

    Carries the call (never its headers, which hold the token) so the caller can look for
    the record before sending it again.
    """

    default_hint = (
        "The record may have been created. `migrate run` reconciles it by reading back before "
        "sending it again; do not resend it by hand."
    )

    def __init__(self, call: Call, what: str, *, status_code: int | None = None) -> None:
        super().__init__(
            f"{call.method} {call.url} got {what}: Pipedrive may or may not have created the record.",
            status_code=status_code,
        )
        self.call = call
        self.method = call.method
        self.path = call.path
        self.version = call.version
        self.body = call.body
        self.params = call.params


def parse_error_body(response: httpx.Response) -> ErrorBody:
    """Pipedrive's error envelope, or an empty one when the body is not JSON."""
    try:
        return ErrorBody.model_validate(response.json())
    except ValueError:
        return ErrorBody()


def is_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def is_budget_exhausted(response: httpx.Response, daily_tokens_remaining: int | None) -> bool:
    """A 429 that says the daily budget (not the burst window) is spent."""
    if daily_tokens_remaining == 0:
        return True
    error = (parse_error_body(response).error or "").lower()
    return any(word in error for word in BUDGET_WORDS)


def budget_reset_time(response: httpx.Response, retry_after: float | None, now: datetime) -> datetime | None:
    """When the daily budget refills, if the answer says: `Retry-After`, or a UTC time in the
    error text. (`x-ratelimit-reset` is the burst window's reset, not the budget's.)"""
    if retry_after is not None:
        return now + timedelta(seconds=retry_after)
    found = RFC3339_UTC.search(parse_error_body(response).error or "")
    if found is None:
        return None
    return datetime.fromisoformat(found.group(0).replace("Z", "+00:00"))


def budget_exhausted(response: httpx.Response, reset_at: datetime | None) -> DailyBudgetExhausted:
    body = parse_error_body(response)
    when = f"It refills at {reset_at:%Y-%m-%d %H:%M} UTC." if reset_at else "It refills at the server's midnight."
    return DailyBudgetExhausted(
        f"Pipedrive's daily API token budget for this company is spent ({body.error or 'HTTP 429'}). {when}",
        reset_at=reset_at,
        hint="The run stopped cleanly; run `migrate run` after the reset to resume where it stopped "
        "(or buy a token top-up in Pipedrive's API usage dashboard).",
    )


def error_for_response(response: httpx.Response, *, method: str, path: str, token_label: str) -> MigrationError:
    """The exception for a final (not retried) error response."""
    status = response.status_code
    body = parse_error_body(response)
    code = body.code or (str(body.errorCode) if body.errorCode is not None else None)
    detail = body.error or response.reason_phrase
    if status == 401:
        return AuthenticationError(
            f"Pipedrive rejected the API token ({token_label} of PIPEDRIVE_API_TOKEN): {detail}.",
            hint="Set PIPEDRIVE_API_TOKEN to the API token of an admin user "
            "(Pipedrive: Personal preferences > API); a regenerated token replaces the old one.",
        )
    if status == 403 and is_html(response):
        return TrafficBlocked(
            f"Pipedrive (Cloudflare) is blocking requests from this account (HTTP 403 page on {method} {path}).",
            status_code=status,
        )
    if status == 403 and code and code.startswith("feature_capping"):
        if "custom_field" in code:
            hint = ("The Pipedrive plan caps the number of custom fields: delete unused custom fields in Pipedrive "
                    "(Company settings > Data fields), or map fewer columns to new custom fields (status not_migrated "
                    "in the mapping files, then `migrate confirm`), or upgrade the plan; then run `migrate run` to resume.")
        else:
            hint = ("The Pipedrive plan caps this: upgrade the plan, archive or delete records, "
                    "or load historical deals as archived; then run `migrate run` to resume.")
        return PlanLimitReached(f"Pipedrive refused {method} {path}: {detail} (plan limit `{code}`).", code=code, hint=hint)
    if status == 402:
        hint = "The Pipedrive company account is not open (trial expired or unpaid): fix it in its billing settings."
    else:
        hint = body.error_info
    return PipedriveApiError(
        f"Pipedrive answered {status} to {method} {path}: {detail}.",
        status_code=status,
        code=code,
        error=body.error,
        error_info=body.error_info,
        method=method,
        path=path,
        hint=hint,
    )


def unreachable(url: str, exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Cannot reach Pipedrive at {url} ({type(exc).__name__}).",
        hint="Check PIPEDRIVE_URL (your company URL, e.g. https://acme.pipedrive.com) and the network.",
    )


def still_failing(call: Call, attempts: int, what: str, *, rate_limited: bool) -> ServiceUnavailable:
    if rate_limited:
        hint = (
            "Another program may be using the same API token, or the daily budget may be spent without "
            "Pipedrive saying so; check the API usage dashboard, then `migrate run` resumes where it stopped."
        )
    else:
        hint = "Pipedrive may be in maintenance (status.pipedrive.com); `migrate run` resumes where it stopped."
    message = f"Pipedrive kept failing {call.method} {call.url} after {attempts} attempts ({what})."
    return ServiceUnavailable(message, hint=hint)


def not_an_envelope(call: Call, url: str) -> PipedriveApiError:
    return PipedriveApiError(
        f"{url} answered {call.method} {call.url} with something that is not Pipedrive's JSON envelope.",
        status_code=200,
        code=None,
        error=None,
        error_info=None,
        method=call.method,
        path=call.url,
        hint="Check PIPEDRIVE_URL: it must be the company URL, e.g. https://acme.pipedrive.com.",
    )
