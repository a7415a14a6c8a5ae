"""Dataverse custom entities -> custom fields on their nearest migrated object.

Pipedrive has no custom objects, so a custom table's records are surfaced on the record they
belong to, as the confirmed plan says (`mapping/custom_entities.py`: the nearest object, reached
by a lookup on the entity or through an N:N intersect table). For each target record (an
account, for `cr7f2_project`): every related record's id (the plan's ids field), name (its names
field) and key fields (`KEY_FIELDS`, e.g. a project's status, start date and budget), each
pipe-delimited in the same order, so the k-th value of every field belongs to the k-th id.
Records are ordered by name, then id, so a rerun writes the same text; a `|` inside a value is
written `/`, so the delimiter stays unambiguous.

Accounting: each custom record is merged into the first of its targets (smallest source id; rule
`custom_entity:<entity set>`); one with no migrated target, or whose entity the plan leaves out
(`target_object: none`), is rejected. Each intersect row is merged into its target (rule
`n_n_link`) or rejected when an end is not migrated.

The fields are long-text custom fields (a list outgrows 255 characters). `ObjectStage.staged` is
empty: the surfaced values are `extra["fields"]` (source_id = the target's source id, one
`custom:<name>` column per field), which join onto the target object's staged rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from migration_pipeline.mapping.custom_entities import TARGETS, CustomEntityPlan
from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import Currencies, Links, ObjectStage, Outcomes, RuleContext
from migration_pipeline.mapping.spec import CustomFieldTarget

DELIMITER = "|"
TABLE_OF_OBJECT = {target_object: table for table, target_object in TARGETS.items()}


@dataclass(frozen=True)
class KeyField:
    """A key field surfaced beside the name: its raw column (a choice's `__label`) and what it is called."""

    column: str
    label: str
    currency_column: str | None = None  # for money: the record's currency lookup, written as its ISO code


# Key fields beyond the name, per custom entity (the sandbox's customised org: delivery projects).
KEY_FIELDS: dict[str, tuple[KeyField, ...]] = {
    "cr7f2_project": (
        KeyField("cr7f2_projectstatus__label", "Status"),
        KeyField("cr7f2_startdate", "Start Date"),
        KeyField("cr7f2_budget", "Budget", currency_column="_transactioncurrencyid_value"),
    ),
}


def key_field_name(plan: CustomEntityPlan, field: KeyField) -> str:
    return f"{plan.display_name} {field.label} (Dynamics)"


def custom_fields(plan: CustomEntityPlan) -> tuple[CustomFieldTarget, ...]:
    """The custom fields the entity needs on its target, for provisioning."""
    extra = tuple(CustomFieldTarget(name=key_field_name(plan, field), field_type="text") for field in KEY_FIELDS.get(plan.entity, ()))
    return (plan.ids_field, plan.names_field, *extra)


def transform_custom_entity(
    records: pd.DataFrame,
    intersect: pd.DataFrame | None,
    plan: CustomEntityPlan,
    context: RuleContext,
    links: Links,
    transactioncurrencies: pd.DataFrame | None = None,
) -> ObjectStage:
    """The custom records surfaced as pipe-delimited custom fields on their migrated targets."""
    outcomes = Outcomes(plan.entity_set)
    records = records.reset_index(drop=True)
    ids = records[plan.primary_id].astype(str)
    empty = pd.DataFrame({"source_id": pd.Series(dtype=object)})
    if plan.target_object == "none":
        outcomes.reject(ids, "*", None, "the plan leaves this custom entity in Dynamics", f"custom_entity:{plan.entity_set}")
        if intersect is not None:
            outcomes.reject(intersect[intersect_key(intersect, plan)], "*", None, "the plan leaves this custom entity in Dynamics", "n_n_link",
                            object_name=plan.intersect_entity_set)
        return outcomes.stage(empty, fields=empty)

    currencies = Currencies.from_raw(transactioncurrencies) if transactioncurrencies is not None else None
    values = field_values(records, plan, currencies)
    pairs = related_pairs(records, intersect, plan, links, outcomes).drop_duplicates(["record", "target"])
    primary = pairs.sort_values(["record", "target"]).drop_duplicates("record")
    outcomes.merge(primary["record"], plan.target_object, primary["target"], f"custom_entity:{plan.entity_set}")
    homeless = ~common.is_in(ids, primary["record"])
    outcomes.reject(ids[homeless], "*", None, f"no related {TABLE_OF_OBJECT[plan.target_object]} is migrated; nowhere to surface it",
                    f"custom_entity:{plan.entity_set}")

    surfaced = pairs.merge(values, left_on="record", right_index=True).sort_values(["target", "order", "record"])
    targets = sorted(set(surfaced["target"]))
    fields = pd.DataFrame({"source_id": targets}, dtype=object)
    for source, name in {"record": plan.ids_field.name, **{column: column for column in values.columns if column != "order"}}.items():
        texts = common.grouped(surfaced["target"], ["" if pd.isna(item) else str(item) for item in surfaced[source]])
        fields[f"custom:{name}"] = [DELIMITER.join(texts[target]) for target in targets]
    return outcomes.stage(empty, fields=fields)


def field_values(records: pd.DataFrame, plan: CustomEntityPlan, currencies: Currencies | None) -> pd.DataFrame:
    """Each record's name and key fields as text (columns named by their custom field), indexed by record id, and the order key."""
    out = pd.DataFrame(index=records[plan.primary_id].astype(str).to_numpy())
    name_column = plan.primary_name or plan.primary_id
    out[plan.names_field.name] = _texts(records[name_column])
    out["order"] = out[plan.names_field.name].fillna("").str.casefold()
    for field in KEY_FIELDS.get(plan.entity, ()):
        raw = records[field.column] if field.column in records else pd.Series(None, index=records.index, dtype=object)
        if field.currency_column is None:
            out[key_field_name(plan, field)] = _texts(raw)
            continue
        amounts = pd.to_numeric(raw, errors="coerce")
        codes = currencies.code_of(records[field.currency_column]) if currencies is not None else pd.Series(None, index=records.index)
        money = [None if pd.isna(a) else (f"{a:.2f} {c}" if isinstance(c, str) else f"{a:.2f}") for a, c in zip(amounts, codes, strict=True)]
        out[key_field_name(plan, field)] = pd.Series(money, index=out.index, dtype=object)
    return out


def _texts(values: pd.Series) -> list[str | None]:
    """Trimmed text with the delimiter made unambiguous."""
    carried = common.text(values, common.TEXT_LIMIT).values
    return [value.replace(DELIMITER, "/") if isinstance(value, str) else None for value in carried]


def intersect_key(intersect: pd.DataFrame, plan: CustomEntityPlan) -> str:
    """The intersect table's own id column: the one that is neither end (the extractor writes it first)."""
    ends = {plan.intersect_entity_key, plan.intersect_target_key, "versionnumber"}
    return next(column for column in intersect.columns if column not in ends)


def related_pairs(records: pd.DataFrame, intersect: pd.DataFrame | None, plan: CustomEntityPlan, links: Links, outcomes: Outcomes) -> pd.DataFrame:
    """(record, target source id) for every migrated target a record relates to, through the plan's link."""
    table = TABLE_OF_OBJECT[plan.target_object]
    ids = records[plan.primary_id].astype(str)
    if plan.link == "lookup" and plan.lookup_column:
        landed = links.resolve(table, records[plan.lookup_column])
        found = (landed["object"] == plan.target_object).to_numpy()
        return pd.DataFrame({"record": ids[found].to_numpy(dtype=object), "target": landed["source_id"][found].to_numpy(dtype=object)})
    if intersect is None or not plan.intersect_entity_key or not plan.intersect_target_key:
        raise ValueError(f"{plan.entity} links through {plan.intersect_entity_set}: pass that table")
    rows = intersect.reset_index(drop=True)
    link_ids = rows[intersect_key(rows, plan)].astype(str)
    landed = links.resolve(table, rows[plan.intersect_target_key])
    found = (landed["object"] == plan.target_object).to_numpy() & common.is_in(rows[plan.intersect_entity_key], ids)
    outcomes.merge(link_ids[found], plan.target_object, landed["source_id"][found], "n_n_link", object_name=plan.intersect_entity_set)
    outcomes.reject(link_ids[~found], "*", rows[plan.intersect_target_key][~found], f"an end of the link is not migrated ({plan.entity} or {table})",
                    "n_n_link", object_name=plan.intersect_entity_set)
    return pd.DataFrame({"record": rows[plan.intersect_entity_key].astype(str)[found].to_numpy(dtype=object),
                         "target": landed["source_id"][found].to_numpy(dtype=object)})
