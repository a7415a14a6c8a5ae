"""The Dataverse Web API simulator: one Starlette app serving Entra's token endpoint and the API.

Every API request goes through the same gate, in the order the real stack applies it:
latency, injected faults (a gateway failure happens before anything else), the OData
headers, the bearer token, the service-protection limiter (authenticated requests only),
then the handler. The environment URL is whatever scheme and host the client used, so a
token must be requested for exactly the URL the client then calls.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from migration_pipeline.sandbox.dataset import DataverseDataset
from migration_pipeline.sandbox.dataverse import controls
from migration_pipeline.sandbox.dataverse.auth import EntraError, basic_credentials
from migration_pipeline.sandbox.dataverse.errors import QUERY_ERROR, SERVICE_UNAVAILABLE, THROTTLED_REQUESTS, DataverseError, no_resource
from migration_pipeline.sandbox.dataverse.faults import Fault
from migration_pipeline.sandbox.dataverse.metadata_api import METADATA_ROOTS
from migration_pipeline.sandbox.dataverse.odata import parse_path, parse_prefer
from migration_pipeline.sandbox.dataverse.options import DataverseOptions
from migration_pipeline.sandbox.dataverse.simulator import DataverseSimulator
from migration_pipeline.sandbox.dataverse.tables import json_response

__all__ = ["DataverseOptions", "DataverseSimulator", "create_app"]

API_PREFIX = "/api/data/v9.2/"
_ACCEPTABLE = ("application/json", "application/*", "*/*", "text/plain", "text/*")


def create_app(dataset: DataverseDataset, options: DataverseOptions | None = None) -> Starlette:
    """Serve `dataset` as a Dataverse environment (API under /api/data/v9.2/, Entra under /{tenant}/)."""
    simulator = DataverseSimulator(dataset, options or DataverseOptions())
    app = Starlette(
        routes=[
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
            Route("/api/data/v9.2", api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
            Route("/api/data/v9.2/{path:path}", api, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
            Mount("/_sandbox", routes=controls.routes),
        ]
    )
    app.state.simulator = simulator
    return app


def environment_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _simulator(request: Request) -> DataverseSimulator:
    return request.app.state.simulator


# --- Entra ------------------------------------------------------------------------------------


async def token(request: Request) -> Response:
    simulator = _simulator(request)
    await simulator.delay()
    fault = simulator.faults.take(request.url.path)
    if fault is not None:
        simulator.record("faulted")
        return _fault_response(fault, simulator)
    content_type = request.headers.get("content-type", "")
    form = await request.form() if content_type.startswith("application/x-www-form-urlencoded") else FormData()
    try:
        body = simulator.issuer.grant(
            request.path_params["tenant"], form, basic_credentials(request.headers.get("authorization")), environment_url(request)
        )
    except EntraError as error:
        simulator.record("token_refused")
        return error.response()
    simulator.record("token_issued")
    return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


async def openid_configuration(request: Request) -> Response:
    simulator = _simulator(request)
    tenant = request.path_params["tenant"]
    if tenant.lower() != simulator.options.tenant_id.lower():
        return EntraError(
            400, "invalid_tenant", 90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
        ).response()
    authority = f"{environment_url(request)}/{tenant}"
    return JSONResponse(
        {
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{authority}/v2.0",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
        }
    )


# --- the Web API ------------------------------------------------------------------------------


async def api(request: Request) -> Response:
    simulator = _simulator(request)
    await simulator.delay()
    fault = simulator.faults.take(request.url.path)
    if fault is not None:
        simulator.record("faulted")
        return _fault_response(fault, simulator)
    try:
        _check_headers(request)
        environment = environment_url(request)
        identity = simulator.issuer.authenticate(request.headers.get("authorization"), environment)
        retry_after = simulator.limiter.admit(identity.client_id)
        if retry_after is not None:
            simulator.record("throttled")
            raise DataverseError(429, THROTTLED_REQUESTS, simulator.limiter.message(), {"Retry-After": str(retry_after)})
        if request.method != "GET":
            raise DataverseError(405, QUERY_ERROR, "The Dataverse sandbox serves reads only; change its data through /_sandbox/.")
        simulator.record("served")
        return await run_in_threadpool(_dispatch, simulator, request, environment)
    except DataverseError as error:
        if error.status == 401:
            simulator.record("unauthorized")
        return error.response()


def _dispatch(simulator: DataverseSimulator, request: Request, environment: str) -> Response:
    root = environment + API_PREFIX
    params = request.query_params.multi_items()
    preferences = parse_prefer(request.headers.getlist("prefer"))
    path = request.path_params.get("path", "")
    if not path.strip("/"):
        return json_response(_service_document(simulator, root))
    segments = parse_path(path)
    head = segments[0]
    if head.name in METADATA_ROOTS:
        options = {name: value for name, value in params if name.startswith("$")}
        return json_response(simulator.metadata.handle(segments, options, root))
    if head.name == "WhoAmI" and head.key in {None, ""} and len(segments) == 1:
        return json_response(_who_am_i(simulator, root))
    tables = simulator.tables
    if head.key is not None:
        return tables.single(head.name, head.key, segments[1:], params, preferences, root)
    if len(segments) == 1:
        return tables.collection(head.name, params, preferences, root)
    if len(segments) == 2 and segments[1].name == "$count":
        return tables.count(head.name, params)
    raise no_resource(segments[1].name)


def _check_headers(request: Request) -> None:
    """OData 4.0 only, JSON only (the service refuses Atom/XML)."""
    accept = request.headers.get("accept")
    if accept:
        ranges = [item.split(";")[0].strip().lower() for item in accept.split(",")]
        if not any(media in _ACCEPTABLE for media in ranges):
            raise DataverseError(406, QUERY_ERROR, f"The Accept header '{accept}' asks for a format the Web API does not serve; use application/json.")
    max_version = request.headers.get("odata-maxversion")
    if max_version and _version(max_version) < 4.0:
        raise DataverseError(400, QUERY_ERROR, f"The OData-MaxVersion '{max_version}' is lower than the service's OData version 4.0.")
    version = request.headers.get("odata-version")
    if version and not 4.0 <= _version(version) < 5.0:
        raise DataverseError(400, QUERY_ERROR, f"The OData-Version '{version}' is not supported; the service speaks OData 4.0.")


def _version(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise DataverseError(400, QUERY_ERROR, f"'{text}' is not a valid OData version.") from None


def _service_document(simulator: DataverseSimulator, root: str) -> dict[str, Any]:
    names = simulator.store.entity_sets
    return {"@odata.context": f"{root}$metadata", "value": [{"name": name, "kind": "EntitySet", "url": name} for name in names]}


def _who_am_i(simulator: DataverseSimulator, root: str) -> dict[str, Any]:
    organization = simulator.store.organization
    return {
        "@odata.context": f"{root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
        "BusinessUnitId": simulator.options.business_unit_id,
        "UserId": simulator.options.application_user_id,
        "OrganizationId": organization.organization_id,
    }


def _fault_response(fault: Fault, simulator: DataverseSimulator) -> Response:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.status == 429:
        headers.setdefault("Retry-After", "1")
        return DataverseError(429, THROTTLED_REQUESTS, simulator.limiter.message(), headers).response()
    message = "The service is temporarily unavailable. Please retry." if fault.status >= 500 else "The request failed (injected fault)."
    return DataverseError(fault.status, SERVICE_UNAVAILABLE, message, headers).response()
