"""Entra's client-credentials endpoint and the bearer check, over real HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from migration_pipeline.sandbox.dataverse.app import DataverseOptions
from migration_pipeline_tests.test_sandbox.dataverse_fixture import HEADERS, Served, served


@pytest.fixture(scope="module")
def dv() -> Iterator[Served]:
    with served() as running:
        yield running


def test_token_success_has_entra_shape_and_works_on_the_api(dv: Served) -> None:
    response = dv.token()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    assert body["access_token"].count(".") == 2  # JWT-shaped
    api = dv.client.get("/api/data/v9.2/WhoAmI", headers={**HEADERS, "Authorization": f"Bearer {body['access_token']}"})
    assert api.status_code == 200 and api.json()["UserId"] == dv.options.application_user_id


def test_client_secret_basic_is_accepted(dv: Served) -> None:
    basic = base64.b64encode(f"{dv.options.client_id}:{dv.options.client_secret}".encode()).decode()
    response = dv.client.post(
        f"/{dv.options.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": f"{dv.url}/.default"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_secret": None}, 401, "invalid_client", 7000218),
        ({"tenant": "99999999-0000-4000-8000-000000000000"}, 400, "invalid_request", 90002),
        ({"scope": "https://contoso.crm.dynamics.com/.default"}, 400, "invalid_scope", 70011),
        ({"scope": "user_impersonation"}, 400, "invalid_scope", 70011),
        ({"client_id": "99999999-0000-4000-8000-000000000000"}, 400, "unauthorized_client", 700016),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": None}, 400, "invalid_request", 900144),
    ],
)
def test_token_errors_use_entra_shape(dv: Served, overrides: dict[str, str | None], status: int, error: str, code: int) -> None:
    response = dv.token(**overrides)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    assert dv.options.client_secret not in response.text


def test_scope_must_name_the_environment_url_as_requested(dv: Served) -> None:
    assert dv.token(scope=f"{dv.url}//.default").status_code == 200  # Entra tolerates the double slash
    other_host = dv.url.replace("127.0.0.1", "localhost")
    assert dv.token(scope=f"{other_host}/.default").json()["error"] == "invalid_scope"


def test_openid_configuration_names_the_token_endpoint(dv: Served) -> None:
    response = dv.client.get(f"/{dv.options.tenant_id}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json()["token_endpoint"] == f"{dv.url}/{dv.options.tenant_id}/oauth2/v2.0/token"
    assert dv.client.get("/not-a-tenant/v2.0/.well-known/openid-configuration").status_code == 400


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic abc", "Bearer not-a-token", "Bearer a.b.c"],
)
def test_missing_or_invalid_bearer_is_401_with_challenge(dv: Served, authorization: str | None) -> None:
    headers = dict(HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.get(f"{dv.url}/api/data/v9.2/accounts", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    assert response.json()["error"]["code"].startswith("0x8004")


def test_tampered_token_is_refused(dv: Served) -> None:
    header, payload, signature = dv.token().json()["access_token"].split(".")
    claims = base64.urlsafe_b64decode(payload + "==").replace(b'"exp":', b'"exp":9')
    forged = f"{header}.{base64.urlsafe_b64encode(claims).rstrip(b'=').decode()}.{signature}"
    response = httpx.get(f"{dv.url}/api/data/v9.2/accounts", headers={**HEADERS, "Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_token_from_another_sandbox_is_refused(dv: Served) -> None:
    with served() as other:
        foreign = other.token().json()["access_token"]
    response = httpx.get(f"{dv.url}/api/data/v9.2/accounts", headers={**HEADERS, "Authorization": f"Bearer {foreign}"})
    assert response.status_code == 401


def test_expired_token_is_401_expired_auth_ticket() -> None:
    with served(options=DataverseOptions(token_lifetime_seconds=2)) as short:
        assert short.token().json()["expires_in"] == 1
        assert short.get("WhoAmI").status_code == 200
        time.sleep(2.1)
        response = short.get("accounts")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "0x8004A101"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert short.simulator.stats()["unauthorized"] == 1
