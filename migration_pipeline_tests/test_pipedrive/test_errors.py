"""Translation of Pipedrive's error answers into the project's error family."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from migration_pipeline.errors import ApiError, AuthenticationError, BudgetExhausted, PermissionDenied
from migration_pipeline.pipedrive.errors import (
    PipedriveApiError,
    PlanLimitReached,
    TrafficBlocked,
    budget_exhausted,
    budget_reset_time,
    error_for_response,
    is_budget_exhausted,
)

CLOUDFLARE_PAGE = "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head></html>"


def translate(response: httpx.Response) -> Exception:
    return error_for_response(response, method="POST", path="/api/v2/deals", token_label="token 2")


def test_401_names_the_setting_and_the_token_by_position() -> None:
    error = translate(httpx.Response(401, json={"success": False, "error": "unauthorized access", "errorCode": 401}))
    assert isinstance(error, AuthenticationError)
    assert "PIPEDRIVE_API_TOKEN" in str(error) and "token 2" in str(error)


def test_html_403_is_the_cloudflare_block_and_says_to_stop() -> None:
    error = translate(httpx.Response(403, text=CLOUDFLARE_PAGE, headers={"content-type": "text/html"}))
    assert isinstance(error, TrafficBlocked)
    assert "blocking" in str(error) and "Stop" in str(error)


def test_feature_capping_403_names_the_cap() -> None:
    body = {"success": False, "error": "Couldn't add the deal. Open deals limit reached.", "code": "feature_capping_deals_limit"}
    error = translate(httpx.Response(403, json=body))
    assert isinstance(error, PlanLimitReached) and isinstance(error, PermissionDenied)
    assert error.code == "feature_capping_deals_limit"
    assert "feature_capping_deals_limit" in str(error) and "Open deals limit reached" in str(error)


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"success": False, "error": "Validation failed: title: required", "error_info": "Check the body", "code": "ERR_SCHEMA_VALIDATION_FAILED"}, "ERR_SCHEMA_VALIDATION_FAILED"),
        (404, {"success": False, "error": "Deal not found", "errorCode": 404}, "404"),
        (403, {"success": False, "error": "You do not have permission", "error_info": "Visibility"}, None),
        (410, {"success": False, "error": "Gone"}, None),
    ],
)
def test_other_4xx_keep_pipedrives_error_info_and_code(status: int, body: dict, code: str | None) -> None:
    error = translate(httpx.Response(status, json=body))
    assert isinstance(error, PipedriveApiError) and isinstance(error, ApiError)
    assert (error.status_code, error.code, error.error, error.error_info) == (status, code, body["error"], body.get("error_info"))
    assert body["error"] in str(error) and "/api/v2/deals" in str(error)
    if body.get("error_info"):
        assert error.hint == body["error_info"]


def test_a_non_json_error_body_still_gives_a_readable_error() -> None:
    error = translate(httpx.Response(400, text="oops"))
    assert isinstance(error, PipedriveApiError) and "Bad Request" in str(error)


def test_budget_429s_are_told_apart_from_burst_429s() -> None:
    burst = httpx.Response(429, json={"success": False, "error": "Request over limit"})
    assert not is_budget_exhausted(burst, daily_tokens_remaining=1200)
    assert is_budget_exhausted(burst, daily_tokens_remaining=0)
    worded = httpx.Response(429, json={"success": False, "error": "Daily token budget exceeded"})
    assert is_budget_exhausted(worded, daily_tokens_remaining=None)


def test_budget_exhausted_carries_the_reset_time_and_the_resume_hint() -> None:
    reset = datetime(2026, 9, 18, 0, 0, tzinfo=timezone.utc)
    error = budget_exhausted(httpx.Response(429, json={"success": False, "error": "Request over limit"}), reset)
    assert isinstance(error, BudgetExhausted) and error.reset_at == reset
    assert "2026-09-18 00:00 UTC" in str(error) and "migrate run" in str(error)
    unknown = budget_exhausted(httpx.Response(429, text=""), None)
    assert unknown.reset_at is None and "midnight" in str(unknown)


def test_the_budget_reset_comes_from_retry_after_or_the_error_text_never_the_burst_reset() -> None:
    now = datetime(2026, 9, 17, 21, 30, tzinfo=timezone.utc)
    plain = httpx.Response(429, json={"error": "Request over limit"}, headers={"x-ratelimit-reset": "2"})
    assert budget_reset_time(plain, None, now) is None
    assert budget_reset_time(plain, 9000.0, now) == datetime(2026, 9, 18, tzinfo=timezone.utc)  # 21:30 + 2.5 h
    worded = httpx.Response(429, json={"error": "Daily API token budget exhausted. The budget resets at 2026-09-18T00:00:00Z."})
    assert budget_reset_time(worded, None, now) == datetime(2026, 9, 18, tzinfo=timezone.utc)
