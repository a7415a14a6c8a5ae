"""`/_sandbox/...`: the simulator's controls as JSON endpoints, for tests in another process.

These are not part of the simulated service: no bearer token, no throttling, no latency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from migration_pipeline.sandbox.dataverse.errors import DataverseError, query_error
from migration_pipeline.sandbox.dataverse.simulator import DataverseSimulator


Model = TypeVar("Model", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class Latency(BaseModel):
    latency_ms: float = Field(ge=0)


class FaultRequest(BaseModel):
    path_prefix: str = "/api/"
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1)
    retry_after: int | None = Field(default=None, ge=0)


class FaultRate(BaseModel):
    rate: float = Field(ge=0, le=1)
    status: int = Field(default=503, ge=400, le=599)
    path_prefix: str = "/api/"
    retry_after: int | None = Field(default=None, ge=0)


class Privilege(BaseModel):
    read: bool


class Limits(BaseModel):
    request_limit: int | None = Field(default=None, ge=1)
    window_seconds: float | None = Field(default=None, gt=0)
    penalty_seconds: float | None = Field(default=None, ge=0)


def _simulator(request: Request) -> DataverseSimulator:
    return request.app.state.simulator


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as error:
        raise query_error(f"The request body is not JSON: {error}") from error


async def _model(request: Request, model: type[Model]) -> Model:
    try:
        return model.model_validate(await _body(request))
    except ValidationError as error:
        raise query_error(str(error)) from error


def _handled(handler: Endpoint) -> Endpoint:
    """Control errors (unknown table or row, bad body) come back in the service's error shape."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except DataverseError as error:
            return error.response()

    return endpoint


async def counts(request: Request) -> Response:
    return JSONResponse(_simulator(request).counts())


async def stats(request: Request) -> Response:
    return JSONResponse(_simulator(request).stats())


async def create_row(request: Request) -> Response:
    values = await _body(request)
    row = _simulator(request).create_row(request.path_params["entity_set"], values)
    return Response(orjson.dumps(row), status_code=201, media_type="application/json")


async def update_row(request: Request) -> Response:
    values = await _body(request)
    row = _simulator(request).update_row(request.path_params["entity_set"], request.path_params["row_id"], values)
    return Response(orjson.dumps(row), media_type="application/json")


async def delete_row(request: Request) -> Response:
    _simulator(request).delete_row(request.path_params["entity_set"], request.path_params["row_id"])
    return Response(status_code=204)


async def set_latency(request: Request) -> Response:
    _simulator(request).set_latency((await _model(request, Latency)).latency_ms)
    return Response(status_code=204)


async def add_fault(request: Request) -> Response:
    fault = await _model(request, FaultRequest)
    _simulator(request).inject_fault(fault.path_prefix, fault.status, fault.count, fault.retry_after)
    return Response(status_code=204)


async def set_fault_rate(request: Request) -> Response:
    rate = await _model(request, FaultRate)
    _simulator(request).set_fault_rate(rate.rate, rate.status, rate.path_prefix, rate.retry_after)
    return Response(status_code=204)


async def clear_faults(request: Request) -> Response:
    _simulator(request).clear_faults()
    return Response(status_code=204)


async def reset_limiter(request: Request) -> Response:
    _simulator(request).reset_limiter()
    return Response(status_code=204)


async def set_limits(request: Request) -> Response:
    limits = await _model(request, Limits)
    _simulator(request).set_limits(limits.request_limit, limits.window_seconds, limits.penalty_seconds)
    return Response(status_code=204)


async def set_privilege(request: Request) -> Response:
    privilege = await _model(request, Privilege)
    _simulator(request).set_readable(request.path_params["entity_set"], privilege.read)
    return Response(status_code=204)


async def expire_change_tracking(request: Request) -> Response:
    _simulator(request).expire_change_tracking()
    return Response(status_code=204)


routes = [
    Route("/counts", _handled(counts), methods=["GET"]),
    Route("/stats", _handled(stats), methods=["GET"]),
    Route("/tables/{entity_set}", _handled(create_row), methods=["POST"]),
    Route("/tables/{entity_set}/{row_id}", _handled(update_row), methods=["PATCH"]),
    Route("/tables/{entity_set}/{row_id}", _handled(delete_row), methods=["DELETE"]),
    Route("/latency", _handled(set_latency), methods=["PUT"]),
    Route("/faults", _handled(add_fault), methods=["POST"]),
    Route("/faults", _handled(clear_faults), methods=["DELETE"]),
    Route("/faults/rate", _handled(set_fault_rate), methods=["PUT"]),
    Route("/limiter/reset", _handled(reset_limiter), methods=["POST"]),
    Route("/limiter", _handled(set_limits), methods=["PUT"]),
    Route("/privileges/{entity_set}", _handled(set_privilege), methods=["PUT"]),
    Route("/change-tracking/expire", _handled(expire_change_tracking), methods=["POST"]),
]
