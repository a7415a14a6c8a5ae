"""The Pipedrive simulator as a Starlette app.

One catch-all endpoint serves `/api/v2/...`, `/api/v1/...` and the bare `/v1/...` alias.
Each request passes the same gates as at Pipedrive, in order: authentication, abuse block,
burst windows, daily token budget, (injected latency and faults), query validation, then the
handler registered for the spec's path template.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from migration_pipeline.sandbox.dataset import PipedriveSeed

# Importing the route modules registers their handlers.
from migration_pipeline.sandbox.pipedrive import v1_routes, v2_deal_products, v2_fields, v2_records  # noqa: F401
from migration_pipeline.sandbox.pipedrive.control import ROUTES as CONTROL_ROUTES
from migration_pipeline.sandbox.pipedrive.faults import Fault, draw_fault
from migration_pipeline.sandbox.pipedrive.options import PipedriveOptions
from migration_pipeline.sandbox.pipedrive.ratelimit import Decision, Verdict
from migration_pipeline.sandbox.pipedrive.responses import ApiError, JSONResponse, error_response
from migration_pipeline.sandbox.pipedrive.routing import HANDLERS, Ctx, Handler, path_params
from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed, validate_query
from migration_pipeline.sandbox.pipedrive.simulator import Simulator
from migration_pipeline.sandbox.pipedrive.spec import Version

logger = logging.getLogger(__name__)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PREFIXES: tuple[tuple[str, Version], ...] = (("/api/v2", "v2"), ("/api/v1", "v1"), ("/v1", "v1"))

BLOCK_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>Access denied | api.pipedrive.com used Cloudflare to restrict access</title></head>
<body><div id="cf-wrapper"><h1>Sorry, you have been blocked</h1>
<h2>You are unable to access api.pipedrive.com</h2>
<p>This website is using a security service to protect itself from online attacks. Too many requests were
sent after the rate limit was reached.</p><p>Cloudflare Ray ID: sandbox</p></div></body></html>"""
BAD_GATEWAY_PAGE = ("<html><head><title>502 Bad Gateway</title></head>"
                    "<body><center><h1>502 Bad Gateway</h1></center></body></html>")


def _split(path: str) -> tuple[Version, str] | None:
    for prefix, version in PREFIXES:
        if path.startswith(prefix + "/"):
            return version, path[len(prefix):].rstrip("/") or "/"
    return None


def _rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(decision.limit),
        "x-ratelimit-remaining": str(decision.remaining),
        "x-ratelimit-reset": str(decision.reset_s),
        "x-daily-ratelimit-token-limit": str(decision.daily_limit),
        "x-daily-ratelimit-token-remaining": str(decision.daily_remaining),
    }


def _refusal(sim: Simulator, decision: Decision) -> Response | None:
    if decision.verdict is Verdict.OK:
        return None
    headers = _rate_headers(decision)
    if decision.verdict is Verdict.BLOCKED:
        return HTMLResponse(BLOCK_PAGE, status_code=403, headers={"retry-after": str(decision.retry_after_s)})
    if decision.verdict is Verdict.BUDGET:
        reset_at = dt.datetime.fromtimestamp(sim.options.clock() + sim.limiter.seconds_to_reset(), tz=dt.UTC)
        headers["x-daily-ratelimit-token-remaining"] = "0"
        return error_response(ApiError(
            429, f"Daily API token budget exhausted. The budget resets at {reset_at:%Y-%m-%dT%H:%M:%SZ}.",
            "ERR_DAILY_TOKEN_BUDGET_EXHAUSTED", "Wait for the daily reset or buy more API tokens.", headers))
    headers["retry-after"] = str(decision.retry_after_s)
    return JSONResponse({"success": False, "error": "Request over limit", "code": "ERR_RATE_LIMIT_EXCEEDED"},
                        status_code=429, headers=headers)


async def api(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    split = _split(request.url.path)
    if split is None:
        return error_response(ApiError(404, "Not found", "ERR_NOT_FOUND"))
    version, path = split
    token = request.headers.get("x-api-token")
    if token is None and version == "v1":
        token = request.query_params.get("api_token")
    user_id = sim.user_for_token(token)
    if token is None or user_id is None:
        return JSONResponse({"success": False, "error": "unauthorized access", "errorCode": 401,
                             "error_info": "Please check developers.pipedrive.com", "data": None,
                             "additional_data": None, "code": "ERR_UNAUTHORIZED"}, status_code=401)
    method = request.method.upper()
    operation = sim.costs.match(version, method, path)
    handler = HANDLERS.get((version, method, operation.template)) if operation else None
    if operation is None or handler is None:
        known = any(sim.costs.match(version, other, path) for other in METHODS if other != method)
        status = 405 if known and operation is None else 404
        return error_response(ApiError(status, "Method not allowed" if status == 405 else "Unknown endpoint",
                                       "ERR_METHOD_NOT_ALLOWED" if status == 405 else "ERR_NOT_FOUND"))
    is_search = path.endswith("/search") or path.startswith("/itemSearch")
    with sim.lock:
        decision = sim.limiter.admit(token, operation.cost, is_search)
        if decision.verdict is Verdict.OK:
            sim.requests_served += 1
        fault = draw_fault(sim.rng, method, sim.options.fault_rate, sim.options.applied_fault_share)
    refusal = _refusal(sim, decision)
    if refusal is not None:
        return refusal
    headers = _rate_headers(decision)
    if sim.options.latency_ms > 0:
        await asyncio.sleep(sim.options.latency_ms / 1000)
    if fault is Fault.REFUSED:
        response: Response = error_response(ApiError(503, "Service temporarily unavailable", "ERR_SERVICE_UNAVAILABLE"))
    else:
        response = await _handle(sim, request, version, method, operation.template, path, user_id, handler)
        if fault is Fault.APPLIED:
            response = HTMLResponse(BAD_GATEWAY_PAGE, status_code=502)
    response.headers.update(headers)
    return response


async def _handle(sim: Simulator, request: Request, version: Version, method: str, template: str, path: str,
                  user_id: int, handler: Handler) -> Response:
    try:
        query = validate_query(version, method, template, dict(request.query_params),
                               ignore=frozenset({"api_token"}) if version == "v1" else frozenset())
        ctx = Ctx(sim, request, version, method, template, path_params(template, path), query, user_id)
        return await handler(ctx)
    except ValidationFailed as error:
        return error_response(ApiError(400, str(error), "ERR_SCHEMA_VALIDATION_FAILED"))
    except ApiError as error:
        return error_response(error)
    except Exception:  # a bug in the simulator, answered as Pipedrive answers its own
        logger.exception("pipedrive simulator failed on %s %s", method, path)
        return error_response(ApiError(500, "Internal Server Error", "ERR_UNKNOWN"))


def create_app(seed: PipedriveSeed, options: PipedriveOptions | None = None) -> Starlette:
    """A fresh simulated company served from `seed`; its state is `app.state.simulator`."""
    routes = [*CONTROL_ROUTES,
              Route("/api/{rest:path}", api, methods=METHODS),
              Route("/v1/{rest:path}", api, methods=METHODS)]
    app = Starlette(routes=routes)
    app.state.simulator = Simulator(seed, options or PipedriveOptions())
    return app
