"""Microsoft Entra ID's client-credentials token endpoint, and the bearer check in front of the API.

Tokens are JWT-shaped (header.payload.signature) with the claims Dataverse reads (`aud` is
the environment URL, `appid` the client id, `exp`), signed with a key that lives only as
long as this app, so a token from another sandbox, an altered token or an expired one is
refused with 401 like the real service refuses it. Errors from the token endpoint use
Entra's JSON shape and AADSTS codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import orjson
from starlette.datastructures import FormData
from starlette.responses import JSONResponse

from migration_pipeline.sandbox.dataverse.errors import EXPIRED_AUTH_TICKET, INVALID_AUTH_TICKET, DataverseError
from migration_pipeline.sandbox.dataverse.options import DataverseOptions


class EntraError(Exception):
    """A token-endpoint failure in Entra's shape: `error`, `error_description` with AADSTS code, ..."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self) -> JSONResponse:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return JSONResponse(body, status_code=self.status, headers={"Cache-Control": "no-store, no-cache"})


@dataclass(frozen=True)
class Identity:
    client_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks the access tokens of one simulated tenant."""

    def __init__(self, options: DataverseOptions) -> None:
        self.options = options
        self._key = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return f"TokenIssuer(tenant_id={self.options.tenant_id!r})"

    # --- the token endpoint ---

    def grant(self, tenant: str, form: FormData, basic_auth: tuple[str, str] | None, environment_url: str) -> dict[str, Any]:
        """Validate a client-credentials request as Entra does, in Entra's order; return the token body."""
        options = self.options
        if tenant.lower() != options.tenant_id.lower():
            raise EntraError(
                400, "invalid_request", 90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        grant_type = form.get("grant_type")
        if not grant_type:
            raise EntraError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
        if grant_type != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'.")
        client_id, client_secret = basic_auth or (str(form.get("client_id") or ""), str(form.get("client_secret") or ""))
        if not client_id:
            raise EntraError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        scope = str(form.get("scope") or "")
        if not scope:
            raise EntraError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
        if client_id.lower() != options.client_id.lower():
            raise EntraError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the "
                "application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            )
        if not client_secret:
            raise EntraError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if not hmac.compare_digest(client_secret.encode(), options.client_secret.encode()):
            raise EntraError(
                401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
                f"not the client secret ID, for a secret added to app '{client_id}'.",
            )
        if not scope.endswith("/.default") or " " in scope.strip():
            raise EntraError(
                400, "invalid_scope", 70011,
                f"The provided request must include a 'scope' input parameter. The provided value for the input parameter "
                f"'scope' is not valid. The scope {scope} is not valid. The client credentials flow only accepts '<resource>/.default'.",
            )
        resource = scope[: -len("/.default")].rstrip("/")
        if resource.lower() != environment_url.rstrip("/").lower():
            raise EntraError(
                400, "invalid_scope", 70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid: the resource "
                f"'{resource}' is not this environment ({environment_url}).",
            )
        expires_in = max(1, options.token_lifetime_seconds - 1)
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": self._sign(environment_url, expires_in),
        }

    def _sign(self, audience: str, expires_in: int) -> str:
        now = math.ceil(time.time())  # rounding up: a token is never valid for less than expires_in
        claims = {
            "aud": audience.rstrip("/"),
            "iss": f"https://sts.windows.net/{self.options.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "appid": self.options.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": self.options.application_user_id,
            "sub": self.options.application_user_id,
            "tid": self.options.tenant_id,
            "ver": "1.0",
            "jti": _b64(secrets.token_bytes(12)),
        }
        signing_input = _b64(orjson.dumps({"typ": "JWT", "alg": "HS256"})) + "." + _b64(orjson.dumps(claims))
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return signing_input + "." + _b64(signature)

    # --- the bearer check ---

    def authenticate(self, authorization: str | None, environment_url: str) -> Identity:
        challenge = {
            "WWW-Authenticate": (
                f"Bearer authorization_uri={environment_url}/{self.options.tenant_id}/oauth2/authorize, "
                f"resource_id={environment_url}/"
            )
        }
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DataverseError(401, INVALID_AUTH_TICKET, "The request has no bearer token. Send 'Authorization: Bearer <access token>'.", challenge)
        claims = self._verified_claims(token.strip())
        if claims is None:
            raise DataverseError(401, INVALID_AUTH_TICKET, "The bearer token is not valid (bad signature or format).", challenge)
        if str(claims.get("aud", "")).lower() != environment_url.rstrip("/").lower():
            raise DataverseError(401, INVALID_AUTH_TICKET, "The bearer token was issued for another resource.", challenge)
        if time.time() >= float(claims.get("exp", 0)):
            expired = {"WWW-Authenticate": challenge["WWW-Authenticate"] + ', error="invalid_token", error_description="The access token is expired"'}
            raise DataverseError(401, EXPIRED_AUTH_TICKET, "The ticket specified for authentication is expired", expired)
        return Identity(str(claims.get("appid", "")))

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = orjson.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return None
        return claims if isinstance(claims, dict) else None


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic: `Authorization: Basic base64(client_id:client_secret)` (URL-encoded parts)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(client_id), unquote_plus(secret)
