"""The field-level diff: what Pipedrive holds against what the confirmed plan says it should hold.

Both sides of a field go through that field's normaliser (`validation/normalize.py`: emails,
phones, money, dates and times in UTC, option ids as labels, links as ids, trimmed strings;
`plain` for a field with no rule), then every field we wrote is compared one by one. A record
that is gone is one `(record)` row; a field whose value differs is one row with both
normalised values side by side and the normaliser's name as its rule.

Records linked to ones that existed in Pipedrive before the migration (`linked`) were never
written by it, so their fields are not compared: each is counted on one `(linked existing)`
summary row instead (equal when the record is there, missing, with a difference row, when it is
gone).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from migration_pipeline.validation.normalize import PLAIN, Norm, plain

DIFF_COLUMNS = ["object", "source_id", "pipedrive_id", "field", "expected", "actual", "rule"]
SUMMARY_COLUMNS = ["object", "field", "compared", "equal", "differing", "missing"]
RECORD = "(record)"
LINKED = "(linked existing)"
# A record in Pipedrive carrying a Dynamics ID that no ID map row points at (`steps/reconcile.py` counts these rows).
DUPLICATE = "(duplicate)"


def normalize(value: Any) -> Any:
    """The comparable form of a value with no field-specific rule (kept for callers of the first diff)."""
    return plain(value)


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


def same(norm: Norm, expected: Any, actual: Any) -> bool:
    """Whether a field holds what was written, both sides through the field's normaliser."""
    return matches(norm(expected), norm(actual))


def differing(body: Mapping[str, Any], record: Mapping[str, Any], norms: Mapping[str, Norm]) -> dict[str, Any]:
    """The part of `body` that `record` does not hold, field by field as the diff compares them: what an update sends."""
    out: dict[str, Any] = {}
    custom_actual = record.get("custom_fields") or {}
    for key, want in body.items():
        if key == "custom_fields":
            custom = {code: value for code, value in (want or {}).items()
                      if not same(norms.get(code, PLAIN), value, custom_actual.get(code))}
            if custom:
                out[key] = custom
        elif not same(norms.get(key, PLAIN), want, record.get(key)):
            out[key] = want
    return out


def _text(value: Any) -> str | None:
    value = normalize(value)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


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


class Tally:
    """Per field: compared, equal, differing, missing; and the difference rows, for one object."""

    def __init__(self, object_name: str) -> None:
        self.object = object_name
        self.counts: dict[str, list[int]] = {}
        self.rows: list[dict[str, Any]] = []

    def equal(self, field: str) -> None:
        self._count(field, 1)

    def differ(self, field: str, source_id: str, pipedrive_id: str | None, expected: Any, actual: Any, rule: str,
               outcome: int = 2) -> None:
        self._count(field, outcome)
        self.rows.append(dict(object=self.object, source_id=source_id, pipedrive_id=pipedrive_id, field=field,
                              expected=_text(expected), actual=_text(actual), rule=rule))

    def _count(self, field: str, outcome: int) -> None:
        counts = self.counts.setdefault(field, [0, 0, 0, 0])
        counts[0] += 1
        counts[outcome] += 1

    def result(self) -> DiffResult:
        differences = pd.DataFrame(self.rows, columns=DIFF_COLUMNS)
        summary = pd.DataFrame(
            [dict(object=self.object, field=field, compared=c[0], equal=c[1], differing=c[2], missing=c[3])
             for field, c in sorted(self.counts.items())],
            columns=SUMMARY_COLUMNS,
        )
        return DiffResult(differences, summary)


def diff_object(
    object_name: str,
    expected: Iterable[tuple[str, str | None, dict[str, Any]]],
    actual: Mapping[str, Mapping[str, Any]],
    field_names: Mapping[str, str],
    linked: Collection[str] = frozenset(),
    norms: Mapping[str, Norm] | None = None,
    duplicates: Iterable[tuple[str, str, str | None]] = (),
    records: bool = True,
) -> DiffResult:
    """Compare `(source id, pipedrive id, body)` triples with the Pipedrive records keyed by id.

    Top-level keys of a body are compared with the record's, `custom_fields` keys with the
    record's `custom_fields`. `norms` gives each body key (a standard field, or a custom
    field's key) its normaliser; `field_names` turns custom-field keys back into names, so
    reports speak of "Main Phone", not of a 40-character hash.

    A triple without a Pipedrive id is a staged record that was never loaded: missing too.
    A triple whose source id is in `linked` points at a record that existed before the
    migration: only its presence is checked, under `(linked existing)`.
    `duplicates` are `(Dynamics id, Pipedrive id, the id the ID map has or None)`: a record
    carrying a Dynamics ID that no ID map row points at, one `(duplicate)` row each.
    `records=False` leaves the `(record)` count out (a check of one field on records another
    object's diff counts, such as the archived state of deals).
    """
    norms = norms or {}
    tally = Tally(object_name)
    for source_id, pipedrive_id, body in expected:
        record = None if pipedrive_id is None else actual.get(str(pipedrive_id))
        pipedrive_id = None if pipedrive_id is None else str(pipedrive_id)
        gone = record is None or bool(record.get("is_deleted"))
        if pipedrive_id is not None and source_id in linked:
            if gone:
                tally.differ(LINKED, source_id, pipedrive_id, "present", None, "missing", outcome=3)
            else:
                tally.equal(LINKED)
            continue
        if gone:
            if records:
                tally.differ(RECORD, source_id, pipedrive_id, "present", None, "not_loaded" if pipedrive_id is None else "missing",
                             outcome=3)
            continue
        assert record is not None
        if records:
            tally.equal(RECORD)
        custom_actual = record.get("custom_fields") or {}
        fields = [(key, value, record.get(key)) for key, value in body.items() if key != "custom_fields"]
        fields += [(key, value, custom_actual.get(key)) for key, value in (body.get("custom_fields") or {}).items()]
        for key, want, have in fields:
            norm = norms.get(key, PLAIN)
            field = field_names.get(key, key)
            if same(norm, want, have):
                tally.equal(field)
            else:
                tally.differ(field, source_id, pipedrive_id, norm(want), norm(have), norm.name)
    for dynamics_id, pipedrive_id, mapped in duplicates:
        tally.differ(DUPLICATE, dynamics_id, pipedrive_id, f"only record {mapped}" if mapped else "no record", "present", "duplicate")
    return tally.result()
