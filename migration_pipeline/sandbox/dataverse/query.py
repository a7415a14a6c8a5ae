"""Pick the rows of one page: filter, order, resume after the previous page's last key.

Two paths give the same answer. Ordered by primary key alone (the default, and what change
tracking and bulk extraction use), the page start is a bisect on the cached sorted keys and
the filter runs over growing chunks from there, so page N of a million-row table costs
about what page 1 costs. Any other `$orderby` masks the whole table, drops the rows at or
before the cursor, and sorts what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from migration_pipeline.sandbox.dataverse.errors import query_error
from migration_pipeline.sandbox.dataverse.evaluate import Columns, after_mask, filter_mask, sort_positions
from migration_pipeline.sandbox.dataverse.odata import Expr, OrderKey, filter_properties
from migration_pipeline.sandbox.dataverse.store import TableSnapshot, plain

_FIRST_CHUNK = 8192


@dataclass(frozen=True)
class Page:
    positions: np.ndarray  # row positions in the snapshot's frame, in result order
    last: tuple[tuple[str, object], ...] | None  # sort-key values of the last row when more rows follow


def table_columns(snapshot: TableSnapshot, rows: np.ndarray | None = None) -> Columns:
    """The filterable view of a table, optionally restricted to some row positions."""
    if rows is None:
        return Columns(snapshot.kinds, snapshot.comparable, len(snapshot.frame), _type_name(snapshot))

    def load(column: str) -> pd.Series:
        return snapshot.comparable(column).iloc[rows]

    return Columns(snapshot.kinds, load, len(rows), _type_name(snapshot))


def _type_name(snapshot: TableSnapshot) -> str:
    return f"Microsoft.Dynamics.CRM.{snapshot.entity.logical_name}"


def check_filter(snapshot: TableSnapshot, expr: Expr) -> None:
    """Reject unknown properties before any work, with the service's message."""
    columns = table_columns(snapshot)
    for name in sorted(filter_properties(expr)):
        columns.kind(name)


def sort_keys(snapshot: TableSnapshot, orderby: list[OrderKey]) -> list[OrderKey]:
    """The requested keys plus the primary key, which makes the order total (stable paging)."""
    columns = table_columns(snapshot)
    for key in orderby:
        columns.kind(key.property)
    if len({key.property for key in orderby}) != len(orderby):
        raise query_error("The $orderby query option names a property more than once.")
    if any(key.property == snapshot.primary_key for key in orderby):
        return list(orderby)
    return [*orderby, OrderKey(snapshot.primary_key)]


def matching_count(snapshot: TableSnapshot, expr: Expr | None) -> int:
    if expr is None:
        return len(snapshot.frame)
    return int(filter_mask(expr, table_columns(snapshot)).sum())


def select_page(
    snapshot: TableSnapshot,
    expr: Expr | None,
    keys: list[OrderKey],
    after: tuple[tuple[str, object], ...] | None,
    size: int,
) -> Page:
    if keys == [OrderKey(snapshot.primary_key)]:
        chosen = _by_primary_key(snapshot, expr, after, size)
    else:
        chosen = _by_sort(snapshot, expr, keys, after, size)
    if len(chosen) <= size:
        return Page(chosen, None)
    positions = chosen[:size]
    last_row = int(positions[-1])
    last = tuple((key.property, plain(snapshot.comparable(key.property).iloc[last_row])) for key in keys)
    return Page(positions, last)


def _by_primary_key(snapshot: TableSnapshot, expr: Expr | None, after: tuple[tuple[str, object], ...] | None, size: int) -> np.ndarray:
    sorted_keys, order = snapshot.pk_index()
    start = int(np.searchsorted(sorted_keys, after[0][1], side="right")) if after else 0
    if expr is None:
        return order[start : start + size + 1]
    found: list[np.ndarray] = []
    total = 0
    chunk = max(_FIRST_CHUNK, 2 * size)
    while start < len(order) and total <= size:
        block = order[start : start + chunk]
        hits = block[filter_mask(expr, table_columns(snapshot, block))]
        found.append(hits)
        total += len(hits)
        start += len(block)
        chunk *= 2
    return np.concatenate(found)[: size + 1] if found else order[:0]


def _by_sort(
    snapshot: TableSnapshot, expr: Expr | None, keys: list[OrderKey], after: tuple[tuple[str, object], ...] | None, size: int
) -> np.ndarray:
    rows = np.arange(len(snapshot.frame)) if expr is None else np.flatnonzero(filter_mask(expr, table_columns(snapshot)))
    if after is not None:
        values = [(snapshot.comparable(key.property).iloc[rows], key.descending) for key in keys]
        rows = rows[after_mask(values, [value for _, value in after])]
    values = [(snapshot.comparable(key.property).iloc[rows], key.descending) for key in keys]
    return rows[sort_positions(values)[: size + 1]] if len(rows) else rows
