"""The sample migration's slice: a few staged records per object, chosen to show what would go wrong at scale.

A sample is where a team catches a wrong stage map or a missing custom field before it touches
thousands of records, so the slice is chosen for coverage, not at random. For every loaded
object, in load order:

1. **coverage**: records are picked, greedily, until every *coverage key* of the object's
   staged table is held by at least one sampled record: every column with a value somewhere
   (standard and custom fields, links), every stage (`ref:stage_id:stages`), every owner bucket
   (the owner resolved by email to a Pipedrive user, or the fallback user), and every value of
   an enumeration (a deal's status, an activity's type, a currency: a text or yes/no column with
   a few repeating values);
2. **fill**: then more records, up to `size` for the object, preferring those whose links point
   at records already in the sample, so the slice stays small and connected;
3. **dependencies**: every record a sampled record links to is sampled too, whatever `size`
   says (a deal brings its organization and person, a deal product its deal and product, an
   activity its deal, organization, lead and participants, a relationship both organizations).
   Links are the `ref:<field>:<object>` columns and the custom fields whose type holds a record
   (an organization's "Primary Contact"). A closed deal brings, besides, every record that hangs
   on it (deal products, activities, notes, files): a load archives closed deals last, because an
   archived deal can no longer be edited, and the sample archives the closed deals it holds, so
   a later full run must find nothing left to add to them.

The choice is deterministic: the same staged tables, plan and size give the same sample.
Records are taken in the order of a hash of their source id (spread over the data, unlike the
first N by id). The sample is stored in `plan.sample` (object, source_id, reason) so analysts
see why each record is in; the load, run as a sample, takes only those records
(`load_step(..., scope=...)`), and a later full run loads the rest: the ID maps already hold
the sampled records, so none is created twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from migration_pipeline.errors import ConfigurationError
from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.payload import CUSTOM_PREFIX, LINKED_OBJECTS, REF_PREFIX, plain
from migration_pipeline.steps.objects import FIELD_OBJECTS
from migration_pipeline.steps.plan import Plan, load_plan
from migration_pipeline.steps.provision import custom_fields_for
from migration_pipeline.warehouse.catalog import Warehouse

# The staged tables a load creates records from, in load order (the `pipedrive/<name>` steps).
SAMPLED = ("organizations", "organizations_relationships", "persons", "products", "deals", "deal_products", "leads", "activities",
           "notes", "files")
ARCHIVE_CANDIDATES = "deals_archive_candidates"  # the closed deals a load archives (`steps/load.py`)
# Load steps that take the sample of another object: the archive step archives the sampled closed deals.
SCOPE_OF = {"deal_archive": "deals"}
DEFAULT_SIZE = 100
STAGE_COLUMN = "ref:stage_id:stages"
OWNER_COLUMNS = ("owner_id", "user_id")  # notes name their owner `user_id`
# A text or yes/no column is an enumeration (statuses, types, currencies, options) when it has at most this many
# distinct values, each seen twice on average, and each a short label.
ENUMERATION_VALUES = 12
LABEL_LENGTH = 40
SAMPLE_TABLE = "plan.sample"
SAMPLE_COLUMNS = "object VARCHAR, source_id VARCHAR, reason VARCHAR"


def choose_sample(
    staged: Mapping[str, pd.DataFrame],
    size: int = DEFAULT_SIZE,
    fallback_owner_id: int | None = None,
    link_fields: Mapping[str, Mapping[str, str]] | None = None,
    archive_candidates: Collection[str] = (),
) -> pd.DataFrame:
    """The sample of `staged` (object -> staged table): one row per sampled record, (object, source_id, reason).

    `size` is the records chosen per object (coverage needs and dependencies come on top);
    `fallback_owner_id` the Pipedrive user unmatched owners go to (the owner buckets);
    `link_fields` object -> custom column -> the object its values are records of;
    `archive_candidates` the closed deals a load archives.
    """
    if size < 1:
        raise ValueError("a sample takes at least one record per object")
    sample = _Sample({name: frame for name, frame in staged.items() if name in SAMPLED}, link_fields or {}, archive_candidates)
    for name in SAMPLED:
        frame = sample.frames.get(name)
        if frame is None or frame.empty:
            continue
        order = sample.preferred_order(name)
        keys = coverage_keys(frame, fallback_owner_id)
        sample.cover(name, keys, order)
        sample.fill(name, order, size)
    return sample.table()


def coverage_keys(frame: pd.DataFrame, fallback_owner_id: int | None = None) -> dict[str, np.ndarray]:
    """What a sample of this staged table must show at least once -> which rows show it (a boolean per row)."""
    keys: dict[str, np.ndarray] = {}
    for column in frame.columns:
        if column == "source_id":
            continue
        values = frame[column]
        present = _present(values)
        if not present.any():
            continue
        if column == STAGE_COLUMN:
            for stage in sorted(set(values[present].astype(str))):
                keys[f"stage {stage}"] = _rows(values.astype(str) == stage) & present
        elif column in OWNER_COLUMNS:
            fallback = _rows(values == fallback_owner_id) & present if fallback_owner_id is not None else np.zeros(len(values), bool)
            keys["owner fallback"] = fallback
            keys["owner matched by email"] = present & ~fallback
        else:
            keys[f"field {column}"] = present
            if not column.startswith(REF_PREFIX):
                for value in _enumeration(values[present]):
                    keys[f"value {column}={value}"] = _rows(values == value) & present
    return {key: rows for key, rows in keys.items() if rows.any()}


def coverage(staged: Mapping[str, pd.DataFrame], sample: pd.DataFrame, fallback_owner_id: int | None = None) -> pd.DataFrame:
    """Every coverage key of every object, with how many staged and how many sampled records show it.

    A sample `choose_sample` made shows every key (`sampled` > 0), whether the record showing it
    was picked for it or came in as another record's dependency.
    """
    rows = []
    for name in SAMPLED:
        frame = staged.get(name)
        if frame is None or frame.empty:
            continue
        chosen = frame["source_id"].astype(str).isin(set(sample.loc[sample["object"] == name, "source_id"])).to_numpy()
        rows += [(name, key, int(hits.sum()), int((hits & chosen).sum()))
                 for key, hits in coverage_keys(frame, fallback_owner_id).items()]
    return pd.DataFrame(rows, columns=["object", "key", "staged", "sampled"])


def shown(covered: pd.DataFrame, kind: str) -> list[str]:
    """The keys of one kind (`stage`, `owner`, `field`, `value`) that sampled records show, across objects."""
    keys = covered.loc[(covered["sampled"] > 0) & covered["key"].str.startswith(f"{kind} "), "key"]
    return sorted({key.removeprefix(f"{kind} ") for key in keys})


def _present(values: pd.Series) -> np.ndarray:
    """Which cells hold something a payload would send (lists and mappings: something non-empty)."""
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        return np.fromiter((plain(value) is not None for value in values), bool, len(values))
    return values.notna().to_numpy()


def _rows(matches: pd.Series) -> np.ndarray:
    """A comparison's result as plain booleans (a nullable column compares to NA where it holds none)."""
    return matches.to_numpy(dtype=bool, na_value=False)


def _enumeration(values: pd.Series) -> list[Any]:
    """The values of an enumeration column (short labels or yes/no, a few that repeat), else none."""
    if values.empty or not all(isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and len(value) <= LABEL_LENGTH)
                               for value in values):
        return []
    distinct = set(values)
    if len(distinct) > ENUMERATION_VALUES or 2 * len(distinct) > len(values):
        return []
    return sorted(distinct, key=str)


def _rank(source_id: str) -> int:
    """A stable pseudo-random order: the same on every machine and Python version, unrelated to how ids sort."""
    return int.from_bytes(hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "big")


def _ids(value: Any) -> list[str]:
    """The record ids a link cell names: one, several (participants), or none."""
    value = plain(value)
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


class _Sample:
    """The sample as it grows: object -> source id -> why it is in (the first reason it was added for)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], link_fields: Mapping[str, Mapping[str, str]],
                 closed_deals: Collection[str]) -> None:
        self.frames = {name: frame.reset_index(drop=True) for name, frame in frames.items()}
        self.rows = {name: {str(source_id): index for index, source_id in enumerate(frame["source_id"])}
                     for name, frame in self.frames.items()}
        self.links = {name: self._link_columns(name, frame, link_fields.get(name, {})) for name, frame in self.frames.items()}
        self.hanging = self._hanging_on(set(map(str, closed_deals)))
        self.chosen: dict[str, dict[str, str]] = {name: {} for name in SAMPLED}

    @staticmethod
    def _link_columns(name: str, frame: pd.DataFrame, custom: Mapping[str, str]) -> list[tuple[str, str]]:
        """(column, linked object) for every column of `frame` naming records of a sampled object."""
        columns = [(column, column.split(":", 2)[2]) for column in frame.columns if column.startswith(REF_PREFIX)]
        columns += [(column, linked) for column, linked in custom.items() if column in frame.columns]
        return [(column, linked) for column, linked in columns if linked in SAMPLED]

    def needs(self, name: str, index: int) -> list[tuple[str, str, str]]:
        """(object, source id, why) of every staged record row `index` of `name` needs: the records it links to, and
        for a closed deal, the records that hang on it."""
        frame = self.frames[name]
        own = str(frame["source_id"].iat[index])
        needed = [(linked, source_id, f"linked from {name} {own}") for column, linked in self.links[name]
                  for source_id in _ids(frame[column].iat[index]) if source_id in self.rows.get(linked, {})]
        if name == "deals":
            needed += [(hanging, source_id, f"on closed deal {own}") for hanging, source_id in self.hanging.get(own, [])]
        return needed

    def add(self, name: str, source_id: str, reason: str) -> None:
        """Add a record and, transitively, every record it needs."""
        pending = [(name, source_id, reason)]
        while pending:
            name, source_id, reason = pending.pop()
            if source_id in self.chosen[name]:
                continue
            self.chosen[name][source_id] = reason
            pending += self.needs(name, self.rows[name][source_id])

    def preferred_order(self, name: str) -> np.ndarray:
        """Row positions of `name`: those needing the fewest records not sampled yet first, then by hash."""
        frame = self.frames[name]
        missing = [sum(source_id not in self.chosen[needed] for needed, source_id, _ in self.needs(name, index))
                   for index in range(len(frame))]
        ranks = [_rank(str(source_id)) for source_id in frame["source_id"]]
        return np.lexsort((ranks, missing))

    def cover(self, name: str, keys: Mapping[str, np.ndarray], order: np.ndarray) -> None:
        """Greedy cover: the record holding the most keys not yet shown, until every key is shown."""
        if not keys:
            return
        names = list(keys)
        matrix = np.column_stack([keys[key] for key in names])[order]
        chosen = np.fromiter((str(source_id) in self.chosen[name] for source_id in self.frames[name]["source_id"]), bool)[order]
        open_keys = ~matrix[chosen].any(axis=0)
        while open_keys.any():
            scores = matrix[:, open_keys].sum(axis=1)
            best = int(np.argmax(scores))  # the first best in preferred order
            shown = [key for key, hit in zip(names, matrix[best] & open_keys, strict=True) if hit]
            self.add(name, str(self.frames[name]["source_id"].iat[order[best]]), "covers " + "; ".join(shown))
            open_keys &= ~matrix[best]

    def fill(self, name: str, order: np.ndarray, size: int) -> None:
        """More records, in preferred order, until the object holds `size`."""
        source_ids = self.frames[name]["source_id"]
        for index in order:
            if len(self.chosen[name]) >= size:
                return
            self.add(name, str(source_ids.iat[index]), f"one of the {size} per object")

    def _hanging_on(self, deals: set[str]) -> dict[str, list[tuple[str, str]]]:
        """Deal source id -> (object, source id) of every staged record linking to it, for these deals."""
        hanging: dict[str, list[tuple[str, str]]] = {}
        for name, frame in self.frames.items():
            for column, linked in self.links[name]:
                if linked != "deals":
                    continue
                for source_id, value in zip(frame["source_id"], frame[column], strict=True):
                    for deal in _ids(value):
                        if deal in deals:
                            hanging.setdefault(deal, []).append((name, str(source_id)))
        return hanging

    def table(self) -> pd.DataFrame:
        rows = [(name, source_id, reason) for name in SAMPLED
                for source_id, reason in sorted(self.chosen.get(name, {}).items())]
        return pd.DataFrame(rows, columns=["object", "source_id", "reason"])


# -- the warehouse side ------------------------------------------------------------------------


@dataclass
class SampleChoice:
    """What `select_sample` chose (`plan.sample`) and what it covers (`coverage`)."""

    records: pd.DataFrame
    coverage: pd.DataFrame


def link_fields_of(plan: Plan) -> dict[str, dict[str, str]]:
    """Object -> custom column -> linked object, for the plan's custom fields that hold records (org, people)."""
    return {item.name: {f"{CUSTOM_PREFIX}{field.name}": LINKED_OBJECTS[field.field_type]
                        for field in custom_fields_for(plan, item.name) if field.field_type in LINKED_OBJECTS}
            for item in FIELD_OBJECTS}


def select_sample(warehouse: Warehouse, mappings_dir: Path, size: int = DEFAULT_SIZE) -> SampleChoice:
    """Choose the sample of what is staged under the confirmed plan and store it in `plan.sample` (replacing any)."""
    require_confirmed(mappings_dir)
    staged = {name: warehouse.read_staged(name) for name in SAMPLED if warehouse.staged_path(name).exists()}
    if not staged:
        raise ConfigurationError("Nothing is staged, so there is nothing to sample.",
                                 hint="Run `migrate plan` and `migrate confirm` first; `migrate sample` stages, then samples.")
    closed = warehouse.read_staged(ARCHIVE_CANDIDATES)["source_id"] if warehouse.staged_path(ARCHIVE_CANDIDATES).exists() else []
    plan = load_plan(mappings_dir)
    fallback = plan.owner_map.fallback_user_id
    sample = choose_sample(staged, size, fallback, link_fields_of(plan), set(map(str, closed)))
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {SAMPLE_TABLE} ({SAMPLE_COLUMNS})")
    warehouse.replace_rows(SAMPLE_TABLE, sample)
    return SampleChoice(sample, coverage(staged, sample, fallback))


def sample_scope(warehouse: Warehouse, step: str) -> set[str]:
    """The source ids of `plan.sample` a load step takes (`deal_archive`: the sampled deals; it archives the closed ones)."""
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {SAMPLE_TABLE} ({SAMPLE_COLUMNS})")
        (records,) = con.execute(f"SELECT count(*) FROM {SAMPLE_TABLE}").fetchone()  # type: ignore[misc]
        if not records:
            raise ConfigurationError("No sample has been chosen, so a sample load has nothing to take.",
                                     hint="Run `migrate sample` (the `sample_migration` job chooses it first, in `plan/sample`).")
        selected = con.execute(f"SELECT source_id FROM {SAMPLE_TABLE} WHERE object = ?", [SCOPE_OF.get(step, step)]).fetchall()
        return {source_id for (source_id,) in selected}


def summary(sample: pd.DataFrame) -> pd.DataFrame:
    """Per object: records sampled, and how many for coverage, because other sampled records need them, and to reach
    the size."""
    kinds = np.select([sample["reason"].str.startswith("covers"), sample["reason"].str.startswith("one of the")],
                      ["covering", "filling"], "needed")
    table = pd.crosstab(sample["object"], kinds).reindex(columns=["covering", "needed", "filling"], fill_value=0)
    table = table.rename_axis(columns=None)
    table.insert(0, "records", table.sum(axis=1))
    order = {name: index for index, name in enumerate(SAMPLED)}
    return table.sort_index(key=lambda names: names.map(order)).rename_axis("object").reset_index()
