"""Failed exchanges become the project's errors, naming what to fix and never the secret."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from pydantic import SecretStr

from migration_pipeline.dynamics.errors import ChangeTrackingExpired, api_error, exhausted, token_error
from migration_pipeline.dynamics.retry import TransientResponse
from migration_pipeline.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    PermissionDenied,
    ServiceUnavailable,
)

SECRET = SecretStr("s3cr3t-Value~xyz")
API = "http://127.0.0.1:9/api/data/v9.2/"


def dataverse(status: int, code: str, message: str, path: str = "accounts?$select=name") -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, request=httpx.Request("GET", API + path)
    )


def entra(status: int, body: Mapping[str, object]) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://127.0.0.1:9/tenant/oauth2/v2.0/token"))


@pytest.mark.parametrize(
    ("body", "setting"),
    [
        (
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1",
                "error_codes": [7000215],
            },
            "DYNAMICS_CLIENT_SECRET",
        ),
        (
            {"error": "unauthorized_client", "error_description": "AADSTS700016: Application with identifier 'x' was not found."},
            "DYNAMICS_CLIENT_ID",
        ),
        ({"error": "invalid_request", "error_description": "AADSTS90002: Tenant 'x' not found. Trace ID: 1 Correlation ID: 2", "error_codes": [90002]}, "DYNAMICS_TENANT_ID"),
        ({"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal named http://x was not found."}, "DYNAMICS_URL"),
        ({"error": "invalid_scope", "error_description": "The provided value for scope is not valid."}, "DYNAMICS_URL"),
        ({"error": "invalid_client", "error_description": ""}, "DYNAMICS_CLIENT_SECRET"),
    ],
)
def test_entra_refusals_name_the_setting_to_fix(body: dict[str, object], setting: str) -> None:
    error = token_error(entra(400 if body["error"] != "invalid_client" else 401, body), SECRET)
    assert isinstance(error, AuthenticationError)
    assert f"Fix {setting}:" in error.hint
    assert "Trace ID" not in str(error)


def test_an_echoed_secret_is_redacted() -> None:
    body = {"error": "invalid_client", "error_description": f"AADSTS7000215: secret {SECRET.get_secret_value()} is wrong"}
    error = token_error(entra(401, body), SECRET)
    assert SECRET.get_secret_value() not in str(error)
    assert "**********" in str(error)


def test_something_else_at_the_authority_is_named() -> None:
    response = httpx.Response(404, text="<html>Not found</html>", request=httpx.Request("POST", "http://127.0.0.1:9/t/oauth2/v2.0/token"))
    error = token_error(response, SECRET)
    assert isinstance(error, AuthenticationError)
    assert "DYNAMICS_AUTHORITY_URL" in str(error)


def test_a_missing_privilege_names_the_privilege_the_table_and_the_role() -> None:
    message = (
        "Principal user (Id=1, type=8, roleCount=1, privilegeCount=12) is missing prvReadWorkflow privilege "
        "(Id=2) on OTC=4703 for entity 'workflow'."
    )
    error = api_error(dataverse(403, "0x80040220", message, "workflows?$select=name"))
    assert isinstance(error, PermissionDenied)
    text = str(error)
    assert "prvReadWorkflow" in text and "'workflow'" in text and "security role" in text


def test_a_403_without_details_still_names_the_request() -> None:
    error = api_error(dataverse(403, "", "Access denied", "workflows"))
    assert isinstance(error, PermissionDenied)
    assert "/api/data/v9.2/workflows" in str(error) and "security role" in str(error)


def test_other_refusals_carry_the_dataverse_code_and_message() -> None:
    error = api_error(dataverse(400, "0x80060888", "Could not find a property named 'nmae' on type 'account'."))
    assert type(error) is ApiError
    assert error.status_code == 400 and error.code == "0x80060888"
    assert "0x80060888" in str(error) and "nmae" in str(error)


def test_an_expired_change_tracking_token_is_its_own_error() -> None:
    error = api_error(
        dataverse(400, "0x80044352", "Version stamp associated with the client has expired. Please perform a full sync.")
    )
    assert isinstance(error, ChangeTrackingExpired)
    assert "full" in str(error)


def test_a_second_401_is_an_authentication_error() -> None:
    error = api_error(dataverse(401, "0x8004A101", "ExpiredAuthTicket"))
    assert isinstance(error, AuthenticationError)
    assert "DYNAMICS_URL" in str(error)


def test_a_redirect_asks_for_the_canonical_url() -> None:
    response = httpx.Response(
        302, headers={"Location": "https://org.api.crm.dynamics.com/api/data/v9.2/accounts"}, request=httpx.Request("GET", API + "accounts")
    )
    error = api_error(response)
    assert isinstance(error, ConfigurationError)
    assert "DYNAMICS_URL" in str(error) and "org.api.crm.dynamics.com" in str(error)


def test_a_non_json_error_body_is_quoted() -> None:
    response = httpx.Response(400, text="Bad Request - Invalid URL", request=httpx.Request("GET", API + "x"))
    error = api_error(response)
    assert isinstance(error, ApiError) and "Invalid URL" in str(error)


def test_refused_connections_name_the_url_setting() -> None:
    error = exhausted(
        httpx.ConnectError("[Errno 111] Connection refused"), setting="DYNAMICS_URL", url="http://127.0.0.1:9", attempts=3
    )
    assert isinstance(error, ServiceUnavailable)
    assert "DYNAMICS_URL=http://127.0.0.1:9" in str(error) and "Connection refused" in str(error)


def test_an_unreachable_authority_names_its_setting() -> None:
    error = exhausted(httpx.ConnectError("refused"), setting="DYNAMICS_AUTHORITY_URL", url="http://127.0.0.1:9", attempts=3)
    assert "DYNAMICS_AUTHORITY_URL" in str(error) and "DYNAMICS_URL=" not in str(error)


def test_persistent_throttling_suggests_fewer_workers() -> None:
    response = dataverse(429, "0x80072322", "Number of requests exceeded the limit")
    error = exhausted(TransientResponse(response), setting="DYNAMICS_URL", url="http://x", attempts=8)
    assert isinstance(error, ServiceUnavailable) and "fewer" in str(error)


def test_persistent_outage_quotes_the_service() -> None:
    error = exhausted(TransientResponse(dataverse(503, "0x80040216", "Down for maintenance")), setting="DYNAMICS_URL", url="http://x", attempts=8)
    assert "503" in str(error) and "Down for maintenance" in str(error) and "8 attempts" in str(error)


def test_timeouts_say_so() -> None:
    error = exhausted(httpx.ReadTimeout("timed out"), setting="DYNAMICS_URL", url="http://x", attempts=2)
    assert "did not answer in time" in str(error)
