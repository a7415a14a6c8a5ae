"""`/_sandbox/...`: the simulator's controls as JSON endpoints, for tests and demos in
another process. They take no API token and cost no tokens."""

from __future__ import annotations

import dataclasses

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from migration_pipeline.sandbox.pipedrive.responses import JSONResponse
from migration_pipeline.sandbox.pipedrive.simulator import Simulator


def _sim(request: Request) -> Simulator:
    return request.app.state.simulator


async def _body(request: Request) -> dict:
    raw = await request.body()
    return orjson.loads(raw) if raw else {}


async def snapshot(request: Request) -> Response:
    return JSONResponse(_sim(request).snapshot())


async def usage(request: Request) -> Response:
    return JSONResponse(_sim(request).usage())


async def reset_budget(request: Request) -> Response:
    _sim(request).reset_budget()
    return JSONResponse(_sim(request).usage())


async def reset_rate_limits(request: Request) -> Response:
    _sim(request).reset_rate_limits()
    return JSONResponse({"ok": True})


async def set_plan(request: Request) -> Response:
    try:
        plan = _sim(request).set_plan(**await _body(request))
    except KeyError as error:
        return JSONResponse({"error": f"unknown plan setting {error}"}, status_code=400)
    return JSONResponse(dataclasses.asdict(plan))


async def set_options(request: Request) -> Response:
    try:
        options = _sim(request).set_options(**await _body(request))
    except KeyError as error:
        return JSONResponse({"error": f"unknown option {error}"}, status_code=400)
    return JSONResponse({"latency_ms": options.latency_ms, "fault_rate": options.fault_rate,
                         "applied_fault_share": options.applied_fault_share})


async def change_record(request: Request) -> Response:
    table = request.path_params["table"]
    raw_id = request.path_params["record_id"]
    record_id = int(raw_id) if raw_id.isdigit() else raw_id
    try:
        record = _sim(request).change_record(table, record_id, await _body(request))
    except KeyError as error:
        return JSONResponse({"error": f"no such record {error}"}, status_code=404)
    return JSONResponse(record)


ROUTES = [
    Route("/_sandbox/snapshot", snapshot, methods=["GET"]),
    Route("/_sandbox/usage", usage, methods=["GET"]),
    Route("/_sandbox/budget/reset", reset_budget, methods=["POST"]),
    Route("/_sandbox/ratelimit/reset", reset_rate_limits, methods=["POST"]),
    Route("/_sandbox/plan", set_plan, methods=["POST"]),
    Route("/_sandbox/options", set_options, methods=["POST"]),
    Route("/_sandbox/records/{table}/{record_id}", change_record, methods=["PATCH"]),
]
