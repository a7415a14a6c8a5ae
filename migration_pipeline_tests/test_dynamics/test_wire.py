"""What the client puts on the wire, checked against a tiny recording server on loopback.

The Dataverse simulator answers like the service; this recorder instead keeps every request
exactly as it arrived, to prove what the simulator cannot see: next links followed byte for
byte, the same `Prefer` on every page, the OData headers, and the token handling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from migration_pipeline.dynamics import DataverseClient
from migration_pipeline.errors import ConfigurationError
from migration_pipeline.sandbox.serve import LoopbackServer

# A real-looking skiptoken: a cookie whose inner pagingcookie is URL-encoded twice. Following it
# "verbatim" means sending these exact bytes back, with no decoding, re-encoding or re-adding.
SKIPTOKEN = (
    "%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%253c"
    "itemid%2520last%253d%2522%257b5A1%257d%2522%2520first%253d%2522%257b001%257d%2522%2520%252f%253e"
    "%253c%252fcookie%253e%22%20istracking=%22False%22%20/%3E"
)


@dataclass
class Recorder:
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    tokens_issued: int = 0
    reject_next_token: bool = False


def recording_app(recorder: Recorder) -> Starlette:
    async def token(request: Request) -> Response:
        form = await request.form()
        assert form["grant_type"] == "client_credentials" and form["client_secret"] == "secret"
        recorder.tokens_issued += 1
        return JSONResponse({"access_token": f"t{recorder.tokens_issued}", "expires_in": 3599, "token_type": "Bearer"})

    async def items(request: Request) -> Response:
        query = request.scope["query_string"].decode()
        recorder.seen.append((request.scope["raw_path"].decode(), query, dict(request.headers)))
        if recorder.reject_next_token:
            recorder.reject_next_token = False
            return JSONResponse({"error": {"code": "0x8004A101", "message": "ExpiredAuthTicket"}}, status_code=401)
        base = f"{request.base_url}api/data/v9.2/items"
        if "$skiptoken" not in query:
            return JSONResponse({"value": [{"itemid": 1}], "@odata.nextLink": f"{base}?$select=name&$skiptoken={SKIPTOKEN}"})
        return JSONResponse({"value": [{"itemid": 2}]})

    async def moved(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": "http://127.0.0.1:1/api/data/v9.2/moved"})

    return Starlette(
        routes=[
            Route("/tenant/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/api/data/v9.2/items", items),
            Route("/api/data/v9.2/moved", moved),
        ]
    )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LoopbackServer, Recorder]]:
    recorder = Recorder()
    with LoopbackServer(recording_app(recorder)) as server:
        yield server, recorder


@pytest.fixture
def client(served: tuple[LoopbackServer, Recorder]) -> Iterator[DataverseClient]:
    server, recorder = served
    recorder.seen.clear()
    with DataverseClient(server.url, "tenant", "wire-client", SecretStr("secret"), server.url) as client:
        yield client


def test_next_links_are_followed_byte_for_byte(client: DataverseClient, served: tuple[LoopbackServer, Recorder]) -> None:
    _, recorder = served
    rows = list(client.iter_rows("items", select=["name"], filter="name eq 'a b'", page_size=2))
    assert rows == [{"itemid": 1}, {"itemid": 2}]
    (first_path, first_query, first_headers), (second_path, second_query, second_headers) = recorder.seen
    assert first_path == second_path == "/api/data/v9.2/items"
    assert first_query == "$select=name&$filter=name%20eq%20'a%20b'"
    assert second_query == f"$select=name&$skiptoken={SKIPTOKEN}"
    # The same preferences on every page, as the paging docs require.
    assert first_headers["prefer"] == second_headers["prefer"] == "odata.maxpagesize=2"


def test_every_request_carries_the_odata_headers(client: DataverseClient, served: tuple[LoopbackServer, Recorder]) -> None:
    _, recorder = served
    list(client.iter_pages("items", annotations="OData.Community.Display.V1.FormattedValue"))
    headers = recorder.seen[0][2]
    assert headers["authorization"].startswith("Bearer t")
    assert headers["accept"] == "application/json"
    assert headers["odata-maxversion"] == headers["odata-version"] == "4.0"
    assert headers["if-none-match"] == "null"
    assert headers["prefer"] == 'odata.maxpagesize=5000,odata.include-annotations="OData.Community.Display.V1.FormattedValue"'


def test_change_tracking_is_asked_for(client: DataverseClient, served: tuple[LoopbackServer, Recorder]) -> None:
    _, recorder = served
    list(client.iter_pages("items", annotations=True, track_changes=True))
    assert recorder.seen[0][2]["prefer"] == 'odata.maxpagesize=5000,odata.include-annotations="*",odata.track-changes'
    with pytest.raises(ValueError, match="only \\$select"):
        next(client.iter_pages("items", filter="x eq 1", track_changes=True))


def test_a_401_renews_the_token_once(client: DataverseClient, served: tuple[LoopbackServer, Recorder]) -> None:
    _, recorder = served
    list(client.iter_pages("items"))
    first_token = recorder.seen[-1][2]["authorization"]
    assert client.stats.token_requests == 1
    recorder.reject_next_token = True
    list(client.iter_pages("items"))
    assert client.stats.token_requests == 2
    assert recorder.seen[-1][2]["authorization"] != first_token


def test_a_redirect_is_not_followed_with_the_token(client: DataverseClient) -> None:
    with pytest.raises(ConfigurationError, match="DYNAMICS_URL") as caught:
        client.get("moved")
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize("page_size", [0, 5001])
def test_page_size_is_bounded_by_the_service_maximum(client: DataverseClient, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(client.iter_pages("items", page_size=page_size))
