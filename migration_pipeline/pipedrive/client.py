"""The Pipedrive API client: v2 where it exists, v1 for the rest, paced, retried and priced.

Everything goes through `PipedriveClient.send`, which:

1. waits for a concurrency slot and a place in the burst window of the API token that can
   send soonest (`ratelimit.TokenPool`; search calls also wait in their own window);
2. sends with the token in the `x-api-token` header (never in the URL);
3. counts the tokens the call cost (`costs`) in `client.usage`;
4. retries what is safe to retry, with exponential backoff and jitter that honours the
   server's `Retry-After` / `x-ratelimit-reset`: burst 429s (after pausing the whole
   token), and 5xx, timeouts and dropped connections on idempotent methods. A POST that got
   no clear answer may have created its record, so it raises `WriteInDoubt` instead;
5. stops the client for good on a spent daily budget or a Cloudflare block: every further
   call raises the same error without touching the network.

It is async (the loader runs many requests at once); `run_sync` serves simple callers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import mimetypes
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import IO, Any, Literal, TypeVar

import httpx
from pydantic import SecretStr

from migration_pipeline.errors import MigrationError
from migration_pipeline.pipedrive.costs import Operation, Version, lookup, operation
from migration_pipeline.pipedrive.errors import (
    TrafficBlocked,
    WriteInDoubt,
    budget_exhausted,
    budget_reset_time,
    error_for_response,
    is_budget_exhausted,
    not_an_envelope,
    still_failing,
    unreachable,
)
from migration_pipeline.pipedrive.models import Call, Envelope, ParentRef
from migration_pipeline.pipedrive.ratelimit import WINDOW_SECONDS, RateLimitHeaders, TokenLane, TokenPool, retry_delay
from migration_pipeline.settings import Settings

T = TypeVar("T")

# Resources that only exist in API v1; everything else is addressed through v2.
V1_RESOURCES = frozenset(
    {
        "leads",
        "leadLabels",
        "leadSources",
        "leadFields",
        "noteFields",
        "notes",
        "files",
        "users",
        "activityTypes",
        "currencies",
        "organizationRelationships",
    }
)
# v1 lists whose page is smaller than the usual 500.
V1_PAGE_LIMITS = {"files": 100}
# Errors raised before a byte of the request left: retrying them can never duplicate a write.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# No answer after the request (or part of it) left: the server may have acted on it.
NO_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
SPOOL_IN_MEMORY = 16 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _settle_the_sniffio_question() -> None:
    """Make httpcore's per-request `import sniffio` cheap when sniffio is not installed.

    httpcore asks `import sniffio` each time it sets up one of its locks, several times per
    request. A module that is not installed is not cached as missing, so each ask searched
    every directory of `sys.path` again: about 2 ms of the event loop per request, 10 % of a
    loader sending 47 requests a second. Recording the absence once (`None` in
    `sys.modules`, the import system's own "known missing" mark) answers the same
    ImportError at once; with sniffio installed nothing changes.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


_settle_the_sniffio_question()


def version_for(resource: str) -> Version:
    """The API version of a resource path such as `deals`, `deals/5/products` or `notes`."""
    return "v1" if resource.strip("/").split("/", 1)[0] in V1_RESOURCES else "v2"


@dataclass
class Usage:
    """What the client spent: requests, tokens (per operation and object), 429s and retries.

    Tokens are estimated from the specs' prices for every answered request except 429s;
    the daily figures are the server's own, from the last response that carried them.
    """

    requests: int = 0
    tokens: int = 0
    rate_limited: int = 0
    retries: int = 0
    requests_by_operation: Counter[str] = field(default_factory=Counter)
    tokens_by_operation: Counter[str] = field(default_factory=Counter)
    tokens_by_object: Counter[str] = field(default_factory=Counter)
    daily_token_limit: int | None = None
    daily_tokens_remaining: int | None = None
    daily_requests_left: int | None = None

    def record(self, op: Operation, status_code: int, rate: RateLimitHeaders) -> None:
        self.requests += 1
        self.requests_by_operation[op.name] += 1
        if status_code == 429:
            self.rate_limited += 1
        else:
            self.tokens += op.cost
            self.tokens_by_operation[op.name] += op.cost
            self.tokens_by_object[op.object] += op.cost
        if rate.daily_token_limit is not None:
            self.daily_token_limit = rate.daily_token_limit
        if rate.daily_tokens_remaining is not None:
            self.daily_tokens_remaining = rate.daily_tokens_remaining
        if rate.daily_requests_left is not None:
            self.daily_requests_left = rate.daily_requests_left

    def snapshot(self) -> dict[str, Any]:
        """A plain copy, for reports, Dagster metadata and `migrate status`."""
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "requests_by_operation": dict(self.requests_by_operation),
            "tokens_by_operation": dict(self.tokens_by_operation),
            "tokens_by_object": dict(self.tokens_by_object),
            "daily_token_limit": self.daily_token_limit,
            "daily_tokens_remaining": self.daily_tokens_remaining,
            "daily_requests_left": self.daily_requests_left,
        }


class PipedriveClient:
    """An async client for one Pipedrive company, over one or more API tokens.

    ```
    async with PipedriveClient.from_settings(settings) as client:
        deal = await client.create("deals", {"title": "Contoso renewal"})
        async for person in client.iter_v2("persons"):
            ...
    print(client.usage.snapshot())
    ```
    """

    def __init__(
        self,
        url: str,
        api_tokens: Sequence[SecretStr],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_attempts: int = 6,
        max_concurrency: int = 16,
        rate_window: float = WINDOW_SECONDS,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url.rstrip("/")
        self.max_attempts = max_attempts
        self.rate_window = rate_window
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.usage = Usage()
        self.pool = TokenPool(api_tokens, window=rate_window)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._stopped: MigrationError | None = None
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"accept": "application/json", "user-agent": "migration-pipeline"},
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PipedriveClient:
        """A client for PIPEDRIVE_URL with every token in PIPEDRIVE_API_TOKEN (comma-separated)."""
        settings.require("pipedrive_url", "pipedrive_api_token")
        assert settings.pipedrive_url is not None
        return cls(settings.pipedrive_url, settings.pipedrive_api_tokens, **options)

    def __repr__(self) -> str:
        return f"PipedriveClient(url={self.url!r}, tokens={len(self.pool.lanes)})"

    async def __aenter__(self) -> PipedriveClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the one way a request is sent ---------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        version: Version,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Envelope:
        """Send one request (with the retries described in the module doc) and parse its envelope."""
        call, response = await self._deliver(method, path, version=version, params=params, json=json, files=files, data=data)
        try:
            return Envelope.model_validate(response.json())
        except ValueError:
            raise not_an_envelope(call, self.url) from None

    async def _deliver(
        self,
        method: str,
        path: str,
        *,
        version: Version,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> tuple[Call, httpx.Response]:
        """Send one request with the retries described in the module doc; the successful answer, unparsed."""
        call = Call(method.upper(), version, "/" + path.strip("/"), params, json, files, data)
        op = operation(version, call.method, call.path)
        failure = "no attempt"
        transport_error: Exception | None = None
        delay = 0.0
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.usage.retries += 1
                await asyncio.sleep(delay)
            lane, response, transport_error = await self._exchange(op, call)
            if response is None:
                assert transport_error is not None
                if call.method == "POST" and not isinstance(transport_error, NOT_SENT):
                    raise WriteInDoubt(call, f"no answer ({type(transport_error).__name__})")
                failure = type(transport_error).__name__
                delay = retry_delay(attempt, base=self.backoff_base, cap=self.backoff_max)
                continue
            rate = RateLimitHeaders.parse(response.headers)
            self.usage.record(op, response.status_code, rate)
            if response.is_success:
                return call, response
            if response.status_code == 429:
                if is_budget_exhausted(response, rate.daily_tokens_remaining):
                    reset_at = budget_reset_time(response, rate.retry_after, datetime.now(timezone.utc))
                    self._stopped = budget_exhausted(response, reset_at)
                    raise self._stopped
                failure = "rate limited (HTTP 429)"
                delay = retry_delay(attempt, base=self.backoff_base, cap=self.backoff_max, hint=rate.wait_hint)
                lane.pause(delay)
                continue
            if response.status_code >= 500:
                if call.method == "POST":
                    raise WriteInDoubt(call, f"HTTP {response.status_code}", status_code=response.status_code)
                failure = f"HTTP {response.status_code}"
                delay = retry_delay(attempt, base=self.backoff_base, cap=self.backoff_max, hint=rate.retry_after)
                continue
            error = error_for_response(response, method=call.method, path=call.url, token_label=lane.label)
            if isinstance(error, TrafficBlocked):
                self._stopped = error
            raise error
        if isinstance(transport_error, NOT_SENT):
            raise unreachable(self.url, transport_error) from None
        raise still_failing(call, self.max_attempts, failure, rate_limited=failure.startswith("rate limited"))

    async def _exchange(self, op: Operation, call: Call) -> tuple[TokenLane, httpx.Response | None, Exception | None]:
        """One attempt: a slot, a place in a token's window, the request.

        Transport errors are returned, not raised, for `send` to judge.
        """
        async with self._slots:
            permit = await self.pool.acquire(search=op.is_search)
            headers: RateLimitHeaders | None = None
            try:
                if self._stopped is not None:  # stopped (budget spent, blocked): nothing more leaves
                    raise self._stopped
                response = await self._http.request(
                    call.method,
                    call.url,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                    headers={"x-api-token": permit.lane.token.get_secret_value()},
                )
                headers = RateLimitHeaders.parse(response.headers)
                return permit.lane, response, None
            except (*NOT_SENT, *NO_ANSWER) as exc:
                return permit.lane, None, exc
            finally:
                # Also when cancelled: a limiter waiting on its first answer must not wait forever.
                permit.settle(headers)

    # --- conveniences over `send` --------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: Literal["v1", "v2"],
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any:
        """The `data` of the answer's envelope (use `send` for `additional_data`)."""
        envelope = await self.send(method, path, version=version, params=params, json=json, files=files, data=data)
        return envelope.data

    async def iter_v2(
        self, resource: str, params: dict[str, Any] | None = None, limit: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a v2 list, following `additional_data.next_cursor`."""
        query = {**(params or {}), "limit": limit}
        while True:
            page = await self.send("GET", resource, version="v2", params=query)
            for row in page.data or []:
                yield row
            if not page.next_cursor:
                return
            query["cursor"] = page.next_cursor

    async def iter_v1(
        self, resource: str, params: dict[str, Any] | None = None, limit: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a v1 list, following `additional_data.pagination.next_start`."""
        page_limit = min(limit, V1_PAGE_LIMITS.get(resource.strip("/"), limit))
        query = {**(params or {}), "start": 0, "limit": page_limit}
        while True:
            page = await self.send("GET", resource, version="v1", params=query)
            for row in page.data or []:
                yield row
            if page.next_start is None:
                return
            query["start"] = page.next_start

    async def iterate(
        self, resource: str, params: dict[str, Any] | None = None, limit: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a list, in the version `resource` lives in."""
        pages = self.iter_v1 if version_for(resource) == "v1" else self.iter_v2
        async for row in pages(resource, params, limit):
            yield row

    async def get(self, resource: str, id: int | str) -> Any:
        return await self.request("GET", f"{resource}/{id}", version=version_for(resource))

    async def create(self, resource: str, body: Any) -> Any:
        """POST a new record; raises `WriteInDoubt` when the outcome is unknown (never retried blindly)."""
        return await self.request("POST", resource, version=version_for(resource), json=body)

    async def update(self, resource: str, id: int | str, body: dict[str, Any]) -> Any:
        """A partial update: PATCH in v2 (and v1 leads), PUT where v1 only has PUT (notes...)."""
        version = version_for(resource)
        path = f"{resource}/{id}"
        method = "PATCH" if version == "v2" or lookup(version, "PATCH", path) else "PUT"
        return await self.request(method, path, version=version, json=body)

    async def delete(self, resource: str, id: int | str) -> Any:
        return await self.request("DELETE", f"{resource}/{id}", version=version_for(resource))

    async def users(self) -> list[dict[str, Any]]:
        """Every user of the company (v1, unpaginated): owners are matched to them by e-mail."""
        return list(await self.request("GET", "users", version="v1") or [])

    async def download_file(self, id: int | str) -> bytes:
        """A file's content (v1 `GET /files/{id}/download`, 20 tokens): the only answer that is not an envelope."""
        _, response = await self._deliver("GET", f"files/{id}/download", version="v1")
        return response.content

    async def upload_file(
        self,
        content: bytes | AsyncIterator[bytes],
        file_name: str,
        parent: dict[str, int | str],
    ) -> dict[str, Any]:
        """Upload one file (v1 multipart) onto its parent, e.g. `{"deal_id": 5}`.

        A stream is spooled (to disk past 16 MB) first: a multipart body needs a length and
        a 429 retry must send the same bytes again.
        """
        form = ParentRef.model_validate(parent).form()
        media_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        body: bytes | IO[bytes] = content if isinstance(content, bytes) else await _spool(content)
        try:
            return await self.request(
                "POST", "files", version="v1", files={"file": (file_name, body, media_type)}, data=form
            )
        finally:
            if not isinstance(body, bytes):
                body.close()


async def _spool(chunks: AsyncIterator[bytes]) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    async for chunk in chunks:
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def run_sync(settings: Settings, work: Callable[[PipedriveClient], Awaitable[T]]) -> T:
    """Run `work` with a client for `settings`, from synchronous code (the CLI, a notebook).

    `run_sync(settings, lambda client: client.users())`
    """

    async def main() -> T:
        async with PipedriveClient.from_settings(settings) as client:
            return await work(client)

    return asyncio.run(main())
