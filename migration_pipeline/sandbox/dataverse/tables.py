"""Reading entity sets: collections, single rows, `$count`, property values and change tracking.

Each handler takes the parsed request (entity set, query options, `Prefer`) and returns the
response the service would send, raising `DataverseError` for anything it would refuse.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
from starlette.responses import Response

from migration_pipeline.sandbox.dataset import Attachment
from migration_pipeline.sandbox.dataverse.annotate import Annotator
from migration_pipeline.sandbox.dataverse.errors import (
    CHANGE_TRACKING_NOT_ENABLED,
    EXPIRED_VERSION_STAMP,
    PRIVILEGE_DENIED,
    DataverseError,
    no_resource,
    not_found,
    query_error,
)
from migration_pipeline.sandbox.dataverse.evaluate import ColumnKind, sort_positions
from migration_pipeline.sandbox.dataverse.metadata import metadata_id, schema_name
from migration_pipeline.sandbox.dataverse.odata import (
    OrderKey,
    Preferences,
    Segment,
    guid_key,
    parse_count,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_top,
)
from migration_pipeline.sandbox.dataverse.options import DataverseOptions
from migration_pipeline.sandbox.dataverse.paging import PageCookie, decode_deltatoken, decode_skiptoken, encode_deltatoken, encode_skiptoken
from migration_pipeline.sandbox.dataverse.query import check_filter, matching_count, select_page, sort_keys
from migration_pipeline.sandbox.dataverse.serialize import DOCUMENT_BODY, document_bodies, rows_payload
from migration_pipeline.sandbox.dataverse.store import Store, TableSnapshot, plain

JSON = "application/json; odata.metadata=minimal"
_QUERY_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$deltatoken", "$expand"})
_NOT_WITH_CHANGE_TRACKING = ("$filter", "$orderby", "$expand", "$top")
_TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
_COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
# The key of a delta page cookie: changed rows (phase 0) in version order, then deletes (phase 1).
_DELTA_KEYS = ["phase", "versionnumber", "id"]
_DELTA_KINDS: dict[str, ColumnKind] = {"phase": "int", "versionnumber": "int", "id": "guid"}


def json_response(body: Any, headers: Mapping[str, str] | None = None, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type=JSON, headers={"OData-Version": "4.0", **(headers or {})})


class TablesApi:
    def __init__(self, store: Store, annotator: Annotator, attachments: Mapping[str, Attachment], options: DataverseOptions) -> None:
        self.store = store
        self.annotator = annotator
        self.attachments = attachments
        self.options = options

    # --- collections ---

    def collection(self, entity_set: str, params: list[tuple[str, str]], preferences: Preferences, root: str) -> Response:
        snapshot = self._readable(entity_set)
        options = _query_options(params)
        select = parse_select(options["$select"]) if "$select" in options else None
        columns = self._columns(snapshot, select)
        size = min(preferences.max_page_size or self.options.max_page_size, self.options.max_page_size)
        applied = _applied(preferences, size)
        tracking = preferences.track_changes or "$deltatoken" in options or 'istracking="True"' in options.get("$skiptoken", "")
        if tracking:
            return self._changes(snapshot, options, preferences, columns, select, size, applied, params, root)
        if "$expand" in options:
            raise query_error("The Dataverse sandbox does not implement $expand on entity sets; page the related table on its own.")
        expr = parse_filter(options["$filter"]) if "$filter" in options else None
        if expr is not None:
            check_filter(snapshot, expr)
        keys = sort_keys(snapshot, parse_orderby(options["$orderby"]) if "$orderby" in options else [])
        top = parse_top(options["$top"]) if "$top" in options else None
        paged = top is None or preferences.max_page_size is not None  # $top is ignored under odata.maxpagesize
        if not paged and top is not None:
            size = min(top, size)
        cookie = decode_skiptoken(options["$skiptoken"], [key.property for key in keys], snapshot.kinds) if "$skiptoken" in options else None
        page = select_page(snapshot, expr, keys, cookie.last if cookie else None, size)
        body: dict[str, Any] = {"@odata.context": _context(root, entity_set, select)}
        if parse_count(options.get("$count", "false")):
            total = matching_count(snapshot, expr)
            body["@odata.count"] = min(total, self.options.count_limit)
            if preferences.wants(_TOTAL_COUNT):
                body[f"@{_TOTAL_COUNT}"] = min(total, self.options.count_limit)
            if preferences.wants(_COUNT_EXCEEDED):
                body[f"@{_COUNT_EXCEEDED}"] = total > self.options.count_limit
        body["value"] = self._rows(snapshot, page.positions, columns, preferences)
        if paged and page.last is not None:
            next_cookie = PageCookie((cookie.page if cookie else 1) + 1, page.last)
            body["@odata.nextLink"] = _next_link(root, entity_set, params, encode_skiptoken(next_cookie, snapshot.kinds))
        return json_response(body, _preference_header(applied))

    def count(self, entity_set: str, params: list[tuple[str, str]]) -> Response:
        snapshot = self._readable(entity_set)
        options = _query_options(params)
        expr = parse_filter(options["$filter"]) if "$filter" in options else None
        if expr is not None:
            check_filter(snapshot, expr)
        total = min(matching_count(snapshot, expr), self.options.count_limit)
        return Response(str(total), media_type="text/plain; charset=utf-8", headers={"OData-Version": "4.0"})

    # --- one row ---

    def single(self, entity_set: str, key: str, rest: list[Segment], params: list[tuple[str, str]], preferences: Preferences, root: str) -> Response:
        snapshot = self._readable(entity_set)
        row_id = guid_key(key)
        if row_id is None:
            raise query_error(f"The key '{key}' is not a GUID; the Dataverse sandbox only addresses rows by primary key.")
        position = snapshot.position(row_id)
        if position is None:
            raise not_found(f"{snapshot.entity.logical_name} With Id = {row_id} Does Not Exist")
        options = _query_options(params)
        positions = np.array([position])
        if not rest:
            select = parse_select(options["$select"]) if "$select" in options else None
            columns = self._columns(snapshot, select)
            row = self._rows(snapshot, positions, columns, preferences)[0]
            return json_response({"@odata.context": _context(root, entity_set, select) + "/$entity", **row}, _preference_header(_applied(preferences, None)))
        name = rest[0].name
        if name not in snapshot.kinds or len(rest) > 2 or rest[0].key is not None or (len(rest) == 2 and rest[1].name != "$value"):
            raise no_resource(rest[-1].name)
        if name == DOCUMENT_BODY and name not in snapshot.frame.columns:
            value: Any = document_bodies([row_id], self.attachments)[0]
        else:
            value = plain(snapshot.frame[name].iloc[position]) if name in snapshot.frame.columns else None
        if value is None:
            return Response(status_code=204, headers={"OData-Version": "4.0"})
        if len(rest) == 2:
            return Response(str(value), media_type="text/plain", headers={"OData-Version": "4.0"})
        return json_response({"@odata.context": f"{root}$metadata#{entity_set}({row_id})/{name}", "value": value})

    # --- change tracking ---

    def _changes(
        self,
        snapshot: TableSnapshot,
        options: dict[str, str],
        preferences: Preferences,
        columns: list[str],
        select: list[str] | None,
        size: int,
        applied: list[str],
        params: list[tuple[str, str]],
        root: str,
    ) -> Response:
        entity = snapshot.entity
        if not entity.change_tracking_enabled:
            raise DataverseError(400, CHANGE_TRACKING_NOT_ENABLED, f"Entity {entity.logical_name} isn't enabled for change tracking.")
        for option in _NOT_WITH_CHANGE_TRACKING:
            if option in options:
                raise query_error(f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.')
        applied = [*applied, "odata.track-changes"]
        if "$deltatoken" in options:
            return self._delta(snapshot, options, preferences, columns, select, size, applied, params, root)
        keys = [OrderKey(snapshot.primary_key)]
        cookie = decode_skiptoken(options["$skiptoken"], [snapshot.primary_key], snapshot.kinds) if "$skiptoken" in options else None
        version = cookie.version if cookie and cookie.version is not None else self.store.version
        page = select_page(snapshot, None, keys, cookie.last if cookie else None, size)
        body: dict[str, Any] = {"@odata.context": _context(root, snapshot.entity.entity_set_name, select)}
        body["value"] = self._rows(snapshot, page.positions, columns, preferences)
        if page.last is not None:
            next_cookie = PageCookie((cookie.page if cookie else 1) + 1, page.last, tracking=True, version=version)
            body["@odata.nextLink"] = _next_link(root, entity.entity_set_name, params, encode_skiptoken(next_cookie, snapshot.kinds))
        else:
            body["@odata.deltaLink"] = _delta_link(root, entity.entity_set_name, select, version)
        return json_response(body, _preference_header(applied))

    def _delta(
        self,
        snapshot: TableSnapshot,
        options: dict[str, str],
        preferences: Preferences,
        columns: list[str],
        select: list[str] | None,
        size: int,
        applied: list[str],
        params: list[tuple[str, str]],
        root: str,
    ) -> Response:
        entity_set = snapshot.entity.entity_set_name
        since, issued = decode_deltatoken(options["$deltatoken"])
        retention = timedelta(days=self.store.organization.expire_change_tracking_in_days)
        if since < self.store.expired_below or datetime.now(UTC) - issued > retention:
            raise DataverseError(400, EXPIRED_VERSION_STAMP, "Version stamp associated with the client has expired. Please perform a full sync.")
        if since > self.store.version:
            raise query_error(f"The $deltatoken value '{options['$deltatoken']}' is not valid.")
        cookie = decode_skiptoken(options["$skiptoken"], _DELTA_KEYS, _DELTA_KINDS) if "$skiptoken" in options else None
        upper = cookie.version if cookie and cookie.version is not None else self.store.version
        entries = self._delta_entries(snapshot, since, upper)
        start = bisect_right([entry[:3] for entry in entries], tuple(value for _, value in cookie.last)) if cookie else 0
        chunk = entries[start : start + size]
        more = start + size < len(entries)
        changed = np.array([entry[3] for entry in chunk if entry[0] == 0], dtype=np.int64)
        value = self._rows(snapshot, changed, columns, preferences)
        deleted_context = f"{root}$metadata#{entity_set}/$deletedEntity"
        value += [{"@odata.context": deleted_context, "id": entry[2], "reason": "deleted"} for entry in chunk if entry[0] == 1]
        body: dict[str, Any] = {"@odata.context": _context(root, entity_set, select) + "/$delta", "value": value}
        if more:
            last = chunk[-1]
            next_cookie = PageCookie((cookie.page if cookie else 1) + 1, (("phase", last[0]), ("versionnumber", last[1]), ("id", last[2])), True, upper)
            body["@odata.nextLink"] = _next_link(root, entity_set, params, encode_skiptoken(next_cookie, _DELTA_KINDS))
        else:
            body["@odata.deltaLink"] = _delta_link(root, entity_set, select, upper)
        return json_response(body, _preference_header(applied))

    def _delta_entries(self, snapshot: TableSnapshot, since: int, upper: int) -> list[tuple[int, int, str, int]]:
        """(phase, version, id, row position) of every change in (since, upper], in delivery order."""
        versions = snapshot.frame["versionnumber"]
        rows = np.flatnonzero(((versions > since) & (versions <= upper)).to_numpy(dtype=bool, na_value=False))
        keys = snapshot.frame[snapshot.primary_key].iloc[rows]
        ordered = rows[sort_positions([(versions.iloc[rows], False), (keys, False)])]
        changes = [
            (0, int(version), str(key), int(row))
            for row, version, key in zip(ordered, versions.iloc[ordered], snapshot.frame[snapshot.primary_key].iloc[ordered], strict=True)
        ]
        deletes = sorted(
            (1, row.version, row.id, -1) for row in self.store.deleted[snapshot.entity.entity_set_name] if since < row.version <= upper
        )
        return changes + deletes

    # --- helpers ---

    def _readable(self, entity_set: str) -> TableSnapshot:
        if not self.store.has(entity_set):
            raise no_resource(entity_set)
        snapshot = self.store.table(entity_set)
        entity = snapshot.entity
        if not entity.readable:
            user = self.options.application_user_id
            privilege = f"prvRead{schema_name(entity.logical_name)}"
            raise DataverseError(
                403,
                PRIVILEGE_DENIED,
                f"Principal user (Id={user}, type=8, roleCount=1, privilegeCount=0, accessMode=4), is missing {privilege} privilege "
                f"(Id={metadata_id('privilege', privilege)}) on OTC={entity.object_type_code} for entity '{entity.logical_name}'. "
                f"context.Caller={user}",
            )
        return snapshot

    def _columns(self, snapshot: TableSnapshot, select: list[str] | None) -> list[str]:
        """The properties a row carries: as selected (plus the key and, for money, the currency)."""
        if select is None:
            columns = [column for column in snapshot.kinds if column != DOCUMENT_BODY]
        else:
            for name in select:
                if name not in snapshot.kinds:
                    raise query_error(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{snapshot.entity.logical_name}'.")
            columns = list(select)
            money = {attribute.column for attribute in snapshot.entity.attributes if attribute.attribute_type == "Money"}
            currency = "_transactioncurrencyid_value"
            if money & set(columns) and currency in snapshot.kinds and currency not in columns:
                columns.append(currency)
        if snapshot.primary_key not in columns:
            columns.append(snapshot.primary_key)
        return columns

    def _rows(self, snapshot: TableSnapshot, positions: np.ndarray, columns: list[str], preferences: Preferences) -> list[dict[str, Any]]:
        annotations = self.annotator.annotations(snapshot, positions, columns, preferences)
        return rows_payload(snapshot, positions, columns, self.attachments, annotations)


def _query_options(params: list[tuple[str, str]]) -> dict[str, str]:
    """The system query options, each at most once; custom (non-$) parameters are ignored."""
    options: dict[str, str] = {}
    for name, value in params:
        if not name.startswith("$"):
            continue
        if name == "$skip":
            raise query_error("The query parameter $skip is not supported. Use the @odata.nextLink of the previous page.")
        if name not in _QUERY_OPTIONS:
            raise query_error(f"The query parameter {name} is not supported.")
        if name in options:
            raise query_error(f"Query option '{name}' was specified more than once, but it must be specified at most once.")
        options[name] = value
    return options


def _applied(preferences: Preferences, size: int | None) -> list[str]:
    applied = []
    if preferences.max_page_size is not None and size is not None:
        applied.append(f"odata.maxpagesize={size}")
    if preferences.annotations:
        applied.append(f'odata.include-annotations="{",".join(preferences.annotations)}"')
    return applied


def _preference_header(applied: list[str]) -> dict[str, str]:
    return {"Preference-Applied": ",".join(applied)} if applied else {}


def _context(root: str, entity_set: str, select: list[str] | None) -> str:
    return f"{root}$metadata#{entity_set}" + (f"({','.join(select)})" if select else "")


def _quote(value: str) -> str:
    return quote(value, safe="$,'()=:!*/@")


def _next_link(root: str, entity_set: str, params: list[tuple[str, str]], skiptoken: str) -> str:
    kept = [f"{_quote(name)}={_quote(value)}" for name, value in params if name != "$skiptoken"]
    return f"{root}{entity_set}?" + "&".join([*kept, f"$skiptoken={_quote(skiptoken)}"])


def _delta_link(root: str, entity_set: str, select: list[str] | None, version: int) -> str:
    token = quote(encode_deltatoken(version, datetime.now(UTC)), safe="")
    selected = f"$select={','.join(select)}&" if select else ""
    return f"{root}{entity_set}?{selected}$deltatoken={token}"
