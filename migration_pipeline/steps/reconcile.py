"""Reconciliation: per object, the counts from Dynamics to Pipedrive, and whether they add up.

For every loaded object (`validation.reconciliation`, one row each):

- `source`: rows of its Dynamics table(s); `accounted`: those the transform staged, merged or
  rejected as a whole record, for this object or the others reading the same table (an
  annotation is a note, a file, or both); `unaccounted`: source rows no object accounts for,
  which must be none; `from_elsewhere`: staged records from other tables (custom entities
  flattened into organizations, a lead's contact staged as a person);
- `staged`, `merged`, `rejected` (whole records, at transform), `refused` (by Pipedrive, at load);
- `loaded` (its ID map), `to_load` (staged, neither loaded nor refused);
- `present` and `missing`: of the loaded records, those the last verify found in Pipedrive and
  those it did not (from `validation.summary`, so reconciling costs no API call);
- `duplicates`: records in Pipedrive carrying a Dynamics ID no ID map row points at (the last
  verify's `(duplicate)` rows in `validation.field_diff`).

Adding up means: nothing unaccounted, `loaded + refused + to_load == staged`,
`present + missing == loaded`, no missing record and no duplicate. Records left to load are
not a failure in themselves (a sample migration loads a slice); `complete` says whether any are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd

from migration_pipeline.validation.diff import DUPLICATE, LINKED, RECORD
from migration_pipeline.warehouse.catalog import Warehouse

# The Dynamics table each object's records come from, and its id column; objects sharing a table account for
# its rows together. Organization relationships come from the organizations' parent links, not a table.
SOURCES: dict[str, tuple[str, str]] = {
    "organizations": ("accounts", "accountid"),
    "persons": ("contacts", "contactid"),
    "products": ("products", "productid"),
    "deals": ("opportunities", "opportunityid"),
    "deal_products": ("opportunityproducts", "opportunityproductid"),
    "leads": ("leads", "leadid"),
    "activities": ("activitypointers", "activityid"),
    "notes": ("annotations", "annotationid"),
    "files": ("annotations", "annotationid"),
}


@dataclass
class Reconciliation:
    object: str
    source: int | None
    accounted: int | None
    unaccounted: int | None
    from_elsewhere: int | None
    staged: int
    merged: int
    rejected: int
    refused: int
    loaded: int
    to_load: int
    present: int
    missing: int
    duplicates: int

    @property
    def problems(self) -> list[str]:
        """What does not add up, in words; empty when everything does."""
        found = []
        if self.unaccounted:
            found.append(f"{self.unaccounted} source rows no object staged, merged or rejected")
        if self.loaded + self.refused + self.to_load != self.staged:
            found.append(f"loaded {self.loaded} + refused {self.refused} + to load {self.to_load} != staged {self.staged}")
        if self.present + self.missing != self.loaded:
            found.append(f"present {self.present} + missing {self.missing} != loaded {self.loaded} (verify is out of date)")
        if self.missing:
            found.append(f"{self.missing} loaded records are not in Pipedrive")
        if self.duplicates:
            found.append(f"{self.duplicates} records in Pipedrive carry a Dynamics ID no ID map knows (duplicates)")
        return found

    @property
    def adds_up(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        return self.to_load == 0


def reconcile(warehouse: Warehouse, names: Iterable[str]) -> list[Reconciliation]:
    """Reconcile `names` from what the warehouse holds; the rows replace theirs in `validation.reconciliation`."""
    names = list(names)
    with warehouse.connect() as con:
        tables = {f"{schema}.{name}" for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL SELECT schema_name, view_name FROM duckdb_views()"
        ).fetchall()}

        def ids(sql: str, params: list[object]) -> set[str]:
            return {str(row[0]) for row in con.execute(sql, params).fetchall()}

        accounted_by: dict[str, set[str]] = {}
        for name in SOURCES:
            staged = ids(f'SELECT source_id FROM staged."{name}"', []) if f"staged.{name}" in tables else set()
            merged = ids("SELECT source_id FROM staged.merged WHERE object = ?", [name])
            rejected = ids("SELECT source_id FROM staged.rejects WHERE object = ? AND field = '*' AND rule <> 'load'", [name])
            accounted_by[name] = staged | merged | rejected
        rows = []
        for name in names:
            staged = ids(f'SELECT source_id FROM staged."{name}"', []) if f"staged.{name}" in tables else set()
            merged = ids("SELECT source_id FROM staged.merged WHERE object = ?", [name])
            rejected = ids("SELECT source_id FROM staged.rejects WHERE object = ? AND field = '*' AND rule <> 'load'", [name])
            refused = ids("SELECT source_id FROM staged.rejects WHERE object = ? AND field = '*' AND rule = 'load'", [name]) & staged
            loaded = ids(f'SELECT source_id FROM idmap."{name}"', []) if f"idmap.{name}" in tables else set()
            summary = dict(con.execute(
                "SELECT field, list_value(sum(equal), sum(missing)) FROM validation.summary WHERE object = ? AND field IN (?, ?) GROUP BY field",
                [name, RECORD, LINKED],
            ).fetchall())
            present = sum(int(pair[0] or 0) for pair in summary.values())
            missing = sum(int(pair[1] or 0) for pair in summary.values())
            duplicates = con.execute(
                "SELECT count(*) FROM validation.field_diff WHERE object = ? AND field = ?", [name, DUPLICATE]
            ).fetchone()[0]
            source = accounted = unaccounted = from_elsewhere = None
            if name in SOURCES:
                table, column = SOURCES[name]
                if f"raw.{table}" in tables:
                    source_ids = ids(f'SELECT "{column}" FROM raw."{table}"', [])
                    sharing = set().union(*(accounted_by[other] for other, (t, _) in SOURCES.items() if t == table))
                    source, accounted = len(source_ids), len(source_ids & accounted_by[name])
                    unaccounted, from_elsewhere = len(source_ids - sharing), len(staged - source_ids)
            rows.append(Reconciliation(
                object=name, source=source, accounted=accounted, unaccounted=unaccounted, from_elsewhere=from_elsewhere, staged=len(staged),
                merged=len(merged), rejected=len(rejected), refused=len(refused), loaded=len(loaded),
                to_load=len(staged - loaded - refused), present=present, missing=missing, duplicates=int(duplicates),
            ))
    frame = pd.DataFrame([{**asdict(row), "adds_up": row.adds_up, "complete": row.complete,
                           "problems": "; ".join(row.problems) or None} for row in rows])
    frame["checked_at"] = datetime.now(UTC)
    warehouse.replace_rows("validation.reconciliation", frame, where="object IN (SELECT unnest(?))", params=[names])
    return rows
