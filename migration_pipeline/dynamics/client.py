"""The Dataverse Web API client: authenticated, paged, throttle-aware reads.

Every request goes through one pipeline (`_get`): wait at the identity's pause gate, attach
a fresh bearer token (renewed once on 401), send, and retry transient failures within a
bounded number of attempts. Collections are read page by page, following `@odata.nextLink`
exactly as the service returned it until it is absent.

One client may be shared by several threads: httpx's connection pool, the token cache and the
pause gate are all thread-safe.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import SecretStr

from migration_pipeline.dynamics.auth import ClientCredentials
from migration_pipeline.dynamics.errors import DYNAMICS_URL, api_error, exhausted
from migration_pipeline.dynamics.models import (
    AttributeDefinition,
    ChoiceAttribute,
    EntityDefinition,
    OptionMetadata,
    Page,
    RelationshipDefinition,
)
from migration_pipeline.dynamics.retry import RETRYABLE, RetryPolicy, raise_if_transient
from migration_pipeline.dynamics.throttle import PauseGate, shared_gate
from migration_pipeline.errors import ApiError
from migration_pipeline.settings import Settings

API_PATH = "/api/data/v9.2/"
MAX_PAGE_SIZE = 5000
COUNT_CAP = 5000  # `$count` never answers more than this
# A 5000-row page of a wide table can take well over the usual 10 s to produce; Microsoft's
# samples allow 2 minutes. Connecting should still be quick.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "If-None-Match": "null",  # never serve stale cached collections
}
# Choice columns whose options `choice_options` reads; each needs its own cast segment.
CHOICE_METADATA_TYPES = (
    "PicklistAttributeMetadata",
    "MultiSelectPicklistAttributeMetadata",
    "StateAttributeMetadata",
    "StatusAttributeMetadata",
)
# What `relationships` selects through each relationship cast (base properties plus the type's own).
_RELATIONSHIP_BASE = ("SchemaName", "RelationshipType", "IsCustomRelationship")
RELATIONSHIP_SELECT = {
    "OneToManyRelationshipMetadata": _RELATIONSHIP_BASE
    + ("ReferencedEntity", "ReferencedAttribute", "ReferencingEntity", "ReferencingAttribute"),
    "ManyToManyRelationshipMetadata": _RELATIONSHIP_BASE
    + ("Entity1LogicalName", "Entity2LogicalName", "IntersectEntityName", "Entity1IntersectAttribute", "Entity2IntersectAttribute"),
}
_LOGICAL_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# Characters OData expressions use that may stay unescaped in a query value.
_QUERY_SAFE = ",'()/:@*$"


@dataclass(frozen=True)
class ClientStats:
    """What a client has sent so far, for run metadata and tests.

    `requests` counts every request sent to the Web API, retries and 401 renewals included;
    `throttled` how many of them were answered 429; `token_requests` the tokens fetched.
    """

    requests: int = 0
    throttled: int = 0
    token_requests: int = 0


class DataverseClient:
    """Reads from one Dataverse environment as one application user (OAuth2 client credentials)."""

    def __init__(
        self,
        url: str,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        authority_url: str = "https://login.microsoftonline.com",
        *,
        timeout: httpx.Timeout | None = None,
        max_attempts: int = 8,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`url` is the environment URL (the API root `/api/data/v9.2/` is added here).

        `max_attempts` bounds the tries of one request through transient failures; `backoff`
        is the first wait between them in seconds (doubling, capped at 60 s, with jitter).
        `timeout` defaults to 120 s for reads and 10 s to connect; `transport` replaces
        httpx's network layer (for example to add a proxy or client certificates).
        """
        self.url = url.rstrip("/")
        self.api_url = self.url + API_PATH
        self._credentials = ClientCredentials(
            authority_url=authority_url,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            scope=f"{self.url}/.default",
        )
        self.gate: PauseGate = shared_gate(authority_url, tenant_id, client_id)
        self._policy = RetryPolicy(max_attempts=max_attempts, backoff_initial=backoff)
        self._http = httpx.Client(timeout=timeout or DEFAULT_TIMEOUT, transport=transport)
        self._stats_lock = threading.Lock()
        self._requests = 0
        self._throttled = 0

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> DataverseClient:
        """A client for the configured environment; `options` are the keyword options of `__init__`."""
        settings.require("dynamics_url", "dynamics_tenant_id", "dynamics_client_id", "dynamics_client_secret")
        # `require` has checked these; the asserts only narrow the types.
        assert settings.dynamics_url and settings.dynamics_tenant_id and settings.dynamics_client_id
        assert settings.dynamics_client_secret is not None
        return cls(
            settings.dynamics_url,
            settings.dynamics_tenant_id,
            settings.dynamics_client_id,
            settings.dynamics_client_secret,
            settings.dynamics_authority_url,
            **options,
        )

    def __repr__(self) -> str:
        return f"DataverseClient(url={self.url!r}, client_id={self._credentials.client_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._stats_lock:
            return ClientStats(self._requests, self._throttled, self._credentials.token_requests)

    # --- Data ----------------------------------------------------------------------------------

    def iter_pages(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | None = None,
        annotations: bool | str = False,
        page_size: int = MAX_PAGE_SIZE,
        track_changes: bool = False,
    ) -> Iterator[Page]:
        """Every page of `entity_set`, in the order the service pages it.

        `annotations` asks for `odata.include-annotations`: True for all (`*`), or a
        comma-separated list such as `OData.Community.Display.V1.FormattedValue`. With
        `track_changes`, the last page carries the `delta_link` to store for `follow_delta`;
        Dataverse then accepts no `$filter` or `$orderby`.
        """
        if track_changes and (filter or orderby):
            raise ValueError("change tracking accepts only $select: drop filter and orderby")
        params = {"$select": ",".join(select) if select else None, "$filter": filter, "$orderby": orderby}
        yield from self._follow(self.url_for(entity_set, params), prefer_header(page_size, annotations, track_changes))

    def iter_rows(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        orderby: str | None = None,
        annotations: bool | str = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every row of `entity_set`, page after page (see `iter_pages`)."""
        pages = self.iter_pages(
            entity_set, select=select, filter=filter, orderby=orderby, annotations=annotations, page_size=page_size
        )
        for page in pages:
            yield from page.rows

    def follow_delta(self, delta_link: str, *, annotations: bool | str = False, page_size: int = MAX_PAGE_SIZE) -> Iterator[Page]:
        """The changes since `delta_link` was issued: changed rows in full, deletions as `$deletedEntity` rows.

        Use `Page.changed_rows` and `Page.deleted_ids`; the last page carries the next
        `delta_link`. An expired link raises `ChangeTrackingExpired`.
        """
        yield from self._follow(delta_link, prefer_header(page_size, annotations, track_changes=True))

    def get(self, path: str, params: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """One JSON resource under the API root, e.g. `accounts(<id>)` or `EntityDefinitions(...)`."""
        result: dict[str, Any] = self._get(self.url_for(path, params)).json()
        return result

    def count(self, entity_set: str) -> int:
        """The number of rows in `entity_set`.

        `GET {entity_set}/$count` answers a bare number but stops at 5000; at that cap the rows
        are counted by paging through their primary keys (one request per 5000 rows).
        """
        text = self._get(self.url_for(f"{entity_set}/$count")).text
        counted = int(text.strip().lstrip("\ufeff"))
        if counted < COUNT_CAP:
            return counted
        [entity] = self.entity_definitions(filter=f"EntitySetName eq '{_logical(entity_set)}'")
        return sum(len(page.rows) for page in self.iter_pages(entity_set, select=[entity.primary_id_attribute]))

    def download_annotation_body(self, annotation_id: str) -> bytes:
        """The file attached to a note (`annotations(id)/documentbody/$value` serves it base64-encoded)."""
        path = f"annotations({uuid.UUID(annotation_id)})/documentbody/$value"
        return base64.b64decode(self._get(self.url_for(path)).content)

    # --- Metadata ------------------------------------------------------------------------------

    def entity_definitions(self, *, filter: str | None = None) -> list[EntityDefinition]:
        """Every table's definition (metadata is not paged; the `$select` is kept to what the model reads)."""
        body = self.get("EntityDefinitions", {"$select": EntityDefinition.select(), "$filter": filter})
        return [EntityDefinition.model_validate(item) for item in body["value"]]

    def entity_definition(self, logical_name: str) -> EntityDefinition:
        body = self.get(f"EntityDefinitions(LogicalName='{_logical(logical_name)}')", {"$select": EntityDefinition.select()})
        return EntityDefinition.model_validate(body)

    def attributes(self, logical_name: str) -> list[AttributeDefinition]:
        """The columns of one table."""
        body = self.get(
            f"EntityDefinitions(LogicalName='{_logical(logical_name)}')/Attributes",
            {"$select": AttributeDefinition.select()},
        )
        return [AttributeDefinition.model_validate(item) for item in body["value"]]

    def choice_options(self, logical_name: str) -> dict[str, list[OptionMetadata]]:
        """The options of every choice column of one table (picklists, multi-select, state, status)."""
        options: dict[str, list[OptionMetadata]] = {}
        for metadata_type in CHOICE_METADATA_TYPES:
            body = self.get(
                f"EntityDefinitions(LogicalName='{_logical(logical_name)}')/Attributes/Microsoft.Dynamics.CRM.{metadata_type}",
                {"$select": "LogicalName", "$expand": "OptionSet"},
            )
            for item in body["value"]:
                choice = ChoiceAttribute.model_validate(item)
                options[choice.logical_name] = choice.option_set.options if choice.option_set else []
        return options

    def relationships(self) -> list[RelationshipDefinition]:
        """Every 1:N and N:N relationship of the environment, in two requests (metadata is not paged).

        One request per relationship cast: the type-specific properties (`ReferencingEntity`,
        `IntersectEntityName`, ...) can only be selected through it. Many-to-one is the same
        1:N seen from the other side, so it needs no request of its own.
        """
        relationships: list[RelationshipDefinition] = []
        for metadata_type, properties in RELATIONSHIP_SELECT.items():
            body = self.get(f"RelationshipDefinitions/Microsoft.Dynamics.CRM.{metadata_type}", {"$select": ",".join(properties)})
            relationships += [RelationshipDefinition.model_validate(item) for item in body["value"]]
        return relationships

    # --- Plumbing ------------------------------------------------------------------------------

    def url_for(self, path: str, params: Mapping[str, str | None] | None = None) -> str:
        """The absolute URL of `path` under the API root, with OData query options encoded once."""
        query = query_string(params or {})
        return f"{self.api_url}{path.lstrip('/')}{'?' + query if query else ''}"

    def _follow(self, url: str, prefer: str) -> Iterator[Page]:
        """Pages from `url` on, following each `@odata.nextLink` verbatim (same `Prefer` every time)."""
        next_url: str | None = url
        while next_url is not None:
            # orjson parses a 5000-row page several times faster than the standard library.
            page = Page.from_json(orjson.loads(self._get(next_url, prefer=prefer).content))
            yield page
            if page.next_link == next_url:
                raise ApiError(
                    f"Dataverse returned the same @odata.nextLink twice ({next_url[:200]}); stopping instead of looping.",
                    hint="Report this to the environment's administrator; re-run the extract later.",
                )
            next_url = page.next_link

    def _get(self, url: str, *, prefer: str | None = None) -> httpx.Response:
        headers = dict(ODATA_HEADERS)
        if prefer:
            headers["Prefer"] = prefer
        try:
            for attempt in self._policy.retrying(self.gate):
                with attempt:
                    self.gate.wait()
                    response = raise_if_transient(self._send_authorized(url, headers))
        except RETRYABLE as error:
            raise exhausted(error, setting=DYNAMICS_URL, url=self.url, attempts=self._policy.attempts_for(error)) from error
        if not response.is_success:
            raise api_error(response)
        return response

    def _send_authorized(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """Send once with the current token; on 401 renew it and send once more."""
        for _ in range(2):
            token = self._credentials.bearer(self._http, self._policy)
            response = self._http.get(url, headers={**headers, "Authorization": f"Bearer {token.get_secret_value()}"})
            with self._stats_lock:
                self._requests += 1
                self._throttled += int(response.status_code == 429)
            if response.status_code != 401:
                break
            self._credentials.invalidate(token)
        return response


def prefer_header(page_size: int, annotations: bool | str, track_changes: bool) -> str:
    """The `Prefer` header value for a collection read."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    preferences = [f"odata.maxpagesize={page_size}"]
    if annotations:
        preferences.append(f'odata.include-annotations="{"*" if annotations is True else annotations}"')
    if track_changes:
        preferences.append("odata.track-changes")
    return ",".join(preferences)


def query_string(params: Mapping[str, str | None]) -> str:
    """OData query options, percent-encoded with `%20` for spaces (never `+`) and `$` left readable."""
    return "&".join(
        f"{quote(name, safe='$@')}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items() if value is not None
    )


def _logical(name: str) -> str:
    """A logical name, checked before it goes into a URL key segment."""
    if not _LOGICAL_NAME.match(name):
        raise ValueError(f"not a Dataverse logical name: {name!r}")
    return name
