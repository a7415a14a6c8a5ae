"""Continuation tokens: the `$skiptoken` paging cookie and the `$deltatoken` version stamp.

The skiptoken keeps the real service's outer shape,
`<cookie pagenumber="2" pagingcookie="..." istracking="False" />`, with the sort-key values of
the previous page's last row inside the (doubly URL-encoded) paging cookie. Paging resumes
*after* those values (keyset paging), so it is stateless, costs a bisect or one mask, and
never loses or repeats a row when rows are inserted mid-run. Clients must treat it as opaque.

The deltatoken is `<version>!<MM/dd/yyyy HH:mm:ss>`, as the service issues it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import pandas as pd

from migration_pipeline.sandbox.dataverse.errors import query_error
from migration_pipeline.sandbox.dataverse.evaluate import ColumnKind

_DELTA_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"


@dataclass(frozen=True)
class PageCookie:
    """Where the next page starts: after the row whose sort-key values are `last`."""

    page: int
    last: tuple[tuple[str, object], ...]  # (column, comparable value or None), in sort order
    tracking: bool = False
    # Change tracking: the version the full sync (or delta) started at, kept across pages so
    # the final deltaLink neither skips nor double-counts rows changed while paging.
    version: int | None = None


def encode_skiptoken(cookie: PageCookie, kinds: Mapping[str, ColumnKind]) -> str:
    inner = ElementTree.Element("cookie", {"page": str(cookie.page - 1)})
    if cookie.version is not None:
        inner.set("version", str(cookie.version))
    for column, value in cookie.last:
        attributes = {"lastnull": "1"} if value is None else {"last": _encode_value(value, kinds[column])}
        ElementTree.SubElement(inner, column, attributes)
    paging = quote(quote(ElementTree.tostring(inner, encoding="unicode"), safe=""), safe="")
    tracking = "True" if cookie.tracking else "False"
    return f'<cookie pagenumber="{cookie.page}" pagingcookie="{paging}" istracking="{tracking}" />'


def decode_skiptoken(text: str, columns: list[str], kinds: Mapping[str, ColumnKind]) -> PageCookie:
    """Parse a skiptoken issued for a query sorted by `columns`; anything else is a 400."""
    try:
        outer = ElementTree.fromstring(text)
        inner = ElementTree.fromstring(unquote(unquote(outer.attrib["pagingcookie"])))
        if outer.tag != "cookie" or inner.tag != "cookie":
            raise ValueError(outer.tag)
        page = int(outer.attrib["pagenumber"])
        last: list[tuple[str, object]] = []
        for element in inner:
            if element.tag not in kinds:
                raise ValueError(element.tag)
            value = None if element.get("lastnull") == "1" else _decode_value(element.attrib["last"], kinds[element.tag])
            last.append((element.tag, value))
        version = inner.get("version")
    except (ElementTree.ParseError, KeyError, ValueError) as error:
        raise query_error("The $skiptoken value is not valid for this query.") from error
    if [column for column, _ in last] != columns:
        raise query_error("The $skiptoken value does not match the query's $orderby; send the nextLink unchanged.")
    return PageCookie(page, tuple(last), outer.get("istracking") == "True", int(version) if version else None)


def _encode_value(value: object, kind: ColumnKind) -> str:
    if kind == "guid":
        return "{" + str(value).upper() + "}"
    if kind == "bool":
        return "1" if value else "0"
    if kind == "datetime":
        return pd.Timestamp(value).isoformat()  # type: ignore[arg-type]
    return repr(value) if kind == "decimal" else str(value)


def _decode_value(text: str, kind: ColumnKind) -> object:
    if kind == "guid":
        return text.strip("{}").lower()
    if kind == "bool":
        return text == "1"
    if kind == "int":
        return int(text)
    if kind == "decimal":
        return float(text)
    if kind == "datetime":
        return pd.Timestamp(text)
    return text


def encode_deltatoken(version: int, at: datetime) -> str:
    return f"{version}!{at.astimezone(UTC).strftime(_DELTA_TIME_FORMAT)}"


def decode_deltatoken(text: str) -> tuple[int, datetime]:
    version, separator, stamp = text.partition("!")
    try:
        if not separator:
            raise ValueError(text)
        return int(version), datetime.strptime(stamp, _DELTA_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise query_error(f"The $deltatoken value '{text}' is not valid.") from error
