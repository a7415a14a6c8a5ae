"""Turning failed exchanges with Entra ID and Dataverse into errors people can act on.

Each function takes what went wrong (a response, or the network error left after the last
retry) and returns one of the project's exceptions whose message says what happened and whose
hint names the setting or the role to fix. Texts quoted from the services are stripped of the
client secret, in case a service ever echoes it back.
"""

from __future__ import annotations

import re

import httpx
from pydantic import SecretStr, ValidationError

from migration_pipeline.dynamics.models import DataverseErrorBody, EntraError
from migration_pipeline.dynamics.retry import TransientResponse
from migration_pipeline.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    MigrationError,
    PermissionDenied,
    ServiceUnavailable,
)

DYNAMICS_URL = "DYNAMICS_URL"
AUTHORITY_URL = "DYNAMICS_AUTHORITY_URL"

_ROLE_HINT = (
    "In the Power Platform admin center open the environment, then Settings > Users + permissions > "
    "Application users, and give this application user a security role that grants it"
)

SETTING_HINTS = {
    DYNAMICS_URL: "Check DYNAMICS_URL: it must be the environment URL shown in Power Apps under Settings > "
    "Developer resources (such as https://contoso.crm.dynamics.com), reachable from this machine.",
    AUTHORITY_URL: "Check DYNAMICS_AUTHORITY_URL: it must be the Microsoft Entra authority, normally "
    "https://login.microsoftonline.com (https://login.microsoftonline.us for US Government clouds), "
    "reachable from this machine.",
}

# Entra error codes (AADSTS...) -> the setting to fix and what is wrong with it.
_ENTRA_CODES: dict[int, tuple[str, str]] = {
    7000215: ("DYNAMICS_CLIENT_SECRET", "the client secret is wrong. Use the secret's Value (not its Secret ID) "
              "from the app registration's Certificates & secrets page."),
    7000222: ("DYNAMICS_CLIENT_SECRET", "the client secret has expired. Create a new one under the app "
              "registration's Certificates & secrets page."),
    700016: ("DYNAMICS_CLIENT_ID", "no application with this client id exists in the tenant. Use the "
             "Application (client) ID from the app registration's Overview page, registered in DYNAMICS_TENANT_ID."),
    90002: ("DYNAMICS_TENANT_ID", "no tenant with this id exists. Use the Directory (tenant) ID from the app "
            "registration's Overview page."),
    900023: ("DYNAMICS_TENANT_ID", "it is not a valid tenant id or domain. Use the Directory (tenant) ID from the "
             "app registration's Overview page."),
    500011: ("DYNAMICS_URL", "no Dataverse environment with this URL exists in the tenant (the token scope is "
             "DYNAMICS_URL/.default). Use the environment URL from Power Apps under Settings > Developer resources."),
    70011: ("DYNAMICS_URL", "the token scope built from it (DYNAMICS_URL/.default) is not valid. Use the "
            "environment URL from Power Apps under Settings > Developer resources."),
}
# When Entra sends no AADSTS code, its OAuth2 `error` name still points at a setting.
_ENTRA_ERRORS: dict[str, int] = {"invalid_client": 7000215, "unauthorized_client": 700016, "invalid_scope": 70011}

_ENTRA_TRAILER = re.compile(r"\r?\n|\s*Trace ID:")
_PRIVILEGE = re.compile(r"\b(prv[A-Za-z0-9_]+)")
_ENTITY = re.compile(r"entity '([A-Za-z0-9_]+)'")
_CT_EXPIRED = re.compile(r"version stamp associated with the client has expired", re.IGNORECASE)
EXPIRED_VERSION_STAMP = "0x80044352"


class ChangeTrackingExpired(ApiError):
    """A stored delta link is older than the org keeps change-tracking history: re-extract in full."""


def dataverse_error(response: httpx.Response) -> tuple[str, str]:
    """`error.code` and `error.message` of a Web API error body (empty strings when absent)."""
    try:
        detail = DataverseErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return "", response.text.strip()[:500]
    return detail.code, detail.message


def describe_request(request: httpx.Request) -> str:
    """`GET /api/data/v9.2/accounts?...`, shortened: enough to recognise the call, never a header."""
    target = request.url.raw_path.decode("ascii", "replace")
    return f"{request.method} {target if len(target) <= 200 else target[:197] + '...'}"


def api_error(response: httpx.Response) -> MigrationError:
    """The error for a Dataverse answer that no retry will fix."""
    code, message = dataverse_error(response)
    status = response.status_code
    said = f"HTTP {status}{' ' + code if code else ''}: {message}".rstrip(": ")
    request = describe_request(response.request)
    if status == 403:
        return _permission_denied(request, said, message)
    if status == 401:
        return AuthenticationError(
            f"Dataverse rejected a freshly issued token for {request} ({said}).",
            hint="Check that DYNAMICS_URL is the environment in which the application user for DYNAMICS_CLIENT_ID "
            "was created (Power Platform admin center > Environments > Settings > Users + permissions > "
            "Application users), and that the user is enabled.",
        )
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("Location", "another address")
        return ConfigurationError(
            f"Dataverse redirected {request} to {location}.",
            hint="Set DYNAMICS_URL to the address it redirects to, so that the token is never sent to a second host.",
        )
    if code.lower() == EXPIRED_VERSION_STAMP or _CT_EXPIRED.search(message):
        return ChangeTrackingExpired(
            f"The change-tracking token of {request} has expired ({said}).",
            status_code=status,
            code=code,
            hint="Extract this table in full again; then run delta pickups more often than the organization's "
            "expirechangetrackingindays.",
        )
    hints = {
        400: "The query does not fit this environment's schema: check the table and column names against its metadata.",
        404: "The table or record does not exist in this environment (a record may have been deleted since it was listed).",
    }
    return ApiError(f"Dataverse refused {request} ({said}).", status_code=status, code=code or None, hint=hints.get(status))


def _permission_denied(request: str, said: str, message: str) -> PermissionDenied:
    privilege = _PRIVILEGE.search(message)
    entity = _ENTITY.search(message)
    what = f"the privilege {privilege.group(1)}" if privilege else "read access"
    what += f" on the table '{entity.group(1)}'" if entity else f" for {request}"
    return PermissionDenied(
        f"The application user lacks {what} ({said}).",
        hint=f"{_ROLE_HINT} {what}; reading a table for extraction and change tracking needs organization-level Read.",
    )


def token_error(response: httpx.Response, secret: SecretStr) -> MigrationError:
    """The error for a token request that Entra (or whatever answers at the authority) refused."""
    try:
        entra = EntraError.model_validate_json(response.content)
    except ValidationError:
        return AuthenticationError(
            f"The token endpoint {describe_request(response.request)} answered HTTP {response.status_code}, "
            "not like a Microsoft Entra token endpoint.",
            hint=SETTING_HINTS[AUTHORITY_URL],
        )
    # Keep the first sentence group; Entra appends trace and correlation ids that help nobody here.
    description = _redact(_ENTRA_TRAILER.split(entra.error_description, maxsplit=1)[0].strip(), secret)
    codes = entra.error_codes or [int(code) for code in re.findall(r"AADSTS(\d+)", description)]
    known = next((code for code in codes if code in _ENTRA_CODES), _ENTRA_ERRORS.get(entra.error))
    said = f"{entra.error}: {description}" if description else entra.error
    if known is None:
        return AuthenticationError(
            f"Microsoft Entra ID refused the token request ({said}).",
            hint="Check DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and DYNAMICS_CLIENT_SECRET against the app registration.",
        )
    setting, problem = _ENTRA_CODES[known]
    return AuthenticationError(f"Microsoft Entra ID refused the token request ({said}).", hint=f"Fix {setting}: {problem}")


def exhausted(error: Exception, *, setting: str, url: str, attempts: int) -> ServiceUnavailable:
    """The error left after the last attempt at a transient failure, naming the setting to check."""
    service = "Dataverse" if setting == DYNAMICS_URL else "the token authority"
    sentence_start = service[0].upper() + service[1:]
    where = f"{setting}={url}"
    if isinstance(error, TransientResponse):
        response = error.response
        if error.throttled:
            return ServiceUnavailable(
                f"Dataverse kept throttling this application user (HTTP 429) after {attempts} attempts.",
                hint="Run fewer extract workers in parallel, make sure no other job uses the same application user, "
                "and try again later.",
            )
        code, message = dataverse_error(response)
        return ServiceUnavailable(
            f"{sentence_start} at {where} kept failing with HTTP {response.status_code}"
            f"{' ' + code if code else ''}{': ' + message if message else ''} after {attempts} attempts.",
            hint=f"The service is unavailable; try again later. {SETTING_HINTS[setting]}",
        )
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return ServiceUnavailable(
            f"{sentence_start} at {where} did not answer in time ({type(error).__name__}) after {attempts} attempts.",
            hint=f"The service is slow or overloaded; try again later or run fewer workers. {SETTING_HINTS[setting]}",
        )
    reason = str(error) or type(error).__name__
    return ServiceUnavailable(
        f"Could not reach {service} at {where} ({reason}) "
        f"after {attempts} attempts.",
        hint=SETTING_HINTS[setting],
    )


def _redact(text: str, secret: SecretStr) -> str:
    value = secret.get_secret_value()
    return text.replace(value, "**********") if value else text
