"""The field-level diff: what Pipedrive holds against what the confirmed plan says it should hold.

Both sides go through the same normalisation (trimmed strings, whole numbers as ints, empty
values as absent, objects compared on the parts we wrote), then every field we wrote is
compared one by one. A record that is gone is one `(record)` row; a field whose value differs
is one row with both values side by side.

Records linked to ones that existed in Pipedrive before the migration (`linked`) were never
written by it, so their fields are not compared: each is counted on one `(linked existing)`
summary row instead (equal when the record is there, missing, with a difference row, when it is
gone).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

DIFF_COLUMNS = ["object", "source_id", "pipedrive_id", "field", "expected", "actual", "rule"]
SUMMARY_COLUMNS = ["object", "field", "compared", "equal", "differing", "missing"]
RECORD = "(record)"
LINKED = "(linked existing)"


def normalize(value: Any) -> Any:
    """The comparable form of a value on either side."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, Mapping):
        items = {key: normalize(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item is not None} or None
    if isinstance(value, (list, tuple)):
        items = [normalize(item) for item in value]
        return [item for item in items if item is not None] or None
    return value


def matches(expected: Any, actual: Any) -> bool:
    """Equal after normalisation; for objects, every part we wrote must be there (extra parts are Pipedrive's).

    A cost of 0 where we wrote none is such an extra part: Pipedrive fills defaults in."""
    expected, actual = normalize(expected), normalize(actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(matches(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        # Lists of objects (emails, prices...): each item we wrote matches one item held, in any order.
        unused = list(actual)
        for item in expected:
            found = next((i for i, candidate in enumerate(unused) if matches(item, candidate)), None)
            if found is None:
                return False
            unused.pop(found)
        return True
    return expected == actual


def _text(value: Any) -> str | None:
    value = normalize(value)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


@dataclass
class DiffResult:
    differences: pd.DataFrame
    summary: pd.DataFrame

    @property
    def clean(self) -> bool:
        return self.differences.empty

    @property
    def linked(self) -> int:
        """How many records are linked to ones that existed before the migration (not field-compared)."""
        rows = self.summary.loc[self.summary["field"] == LINKED, "compared"]
        return int(rows.iloc[0]) if len(rows) else 0


def diff_object(
    object_name: str,
    expected: Iterable[tuple[str, str | None, dict[str, Any]]],
    actual: Mapping[str, Mapping[str, Any]],
    field_names: Mapping[str, str],
    linked: Collection[str] = frozenset(),
) -> DiffResult:
    """Compare `(source id, pipedrive id, body)` triples with the Pipedrive records keyed by id.

    A triple without a Pipedrive id is a staged record that was never loaded: missing too.
    A triple whose source id is in `linked` points at a record that existed before the
    migration: only its presence is checked, under `(linked existing)`.

    `field_names` turns custom-field keys back into names, so reports speak of "Main Phone", not
    of a 40-character hash.
    """
    rows: list[dict[str, Any]] = []
    tally: dict[str, list[int]] = {}

    def count(field: str, outcome: int) -> None:
        tally.setdefault(field, [0, 0, 0, 0])
        tally[field][0] += 1
        tally[field][outcome] += 1

    for source_id, pipedrive_id, body in expected:
        record = None if pipedrive_id is None else actual.get(str(pipedrive_id))
        if pipedrive_id is not None and source_id in linked:
            if record is None or record.get("is_deleted"):
                count(LINKED, 3)
                rows.append(dict(object=object_name, source_id=source_id, pipedrive_id=str(pipedrive_id), field=LINKED,
                                 expected="present", actual=None, rule="missing"))
            else:
                count(LINKED, 1)
            continue
        if record is None or record.get("is_deleted"):
            count(RECORD, 3)
            rows.append(dict(object=object_name, source_id=source_id, pipedrive_id=pipedrive_id and str(pipedrive_id), field=RECORD,
                             expected="present", actual=None, rule="not_loaded" if pipedrive_id is None else "missing"))
            continue
        count(RECORD, 1)
        fields = [(name, value, record.get(name)) for name, value in body.items() if name != "custom_fields"]
        custom_actual = record.get("custom_fields") or {}
        fields += [(field_names.get(key, key), value, custom_actual.get(key)) for key, value in body.get("custom_fields", {}).items()]
        for field, want, have in fields:
            if matches(want, have):
                count(field, 1)
            else:
                count(field, 2)
                rows.append(dict(object=object_name, source_id=source_id, pipedrive_id=str(pipedrive_id), field=field,
                                 expected=_text(want), actual=_text(have), rule="value"))
    differences = pd.DataFrame(rows, columns=DIFF_COLUMNS)
    summary = pd.DataFrame(
        [dict(object=object_name, field=field, compared=c[0], equal=c[1], differing=c[2], missing=c[3]) for field, c in sorted(tally.items())],
        columns=SUMMARY_COLUMNS,
    )
    return DiffResult(differences, summary)
