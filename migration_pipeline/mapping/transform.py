"""Raw Dynamics rows -> staged Pipedrive payloads, driven by an object's field map.

`transform_object` is a pure function: a raw DataFrame and the confirmed plan in, the staged
frame and the rejects out. The staged frame has `source_id` and one column per destination
(standard fields by name, custom fields as `custom:<name>`), which the loader turns into
request bodies once provisioning knows the custom-field keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from migration_pipeline.mapping import transforms
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, FieldMap, ObjectMap

CURRENCY_COLUMN = "_transactioncurrencyid_value"  # every money-holding Dynamics table has this lookup
WHOLE_RECORD = "*"  # the `field` of a reject that keeps the whole record out
REJECT_COLUMNS = ["object", "source_id", "field", "value", "reason", "rule"]
DYNAMICS_ID_COLUMN = f"custom:{DYNAMICS_ID_FIELD}"


@dataclass
class TransformContext:
    """What the transforms need beyond the rows: the confirmed owner map and the fallback user."""

    owner_map: dict[str, int] = field(default_factory=dict)
    fallback_owner_id: int | None = None
    currencies: dict[str, str] = field(default_factory=dict)  # Dynamics currency id (lower case) -> ISO code


@dataclass
class TransformResult:
    staged: pd.DataFrame
    rejects: pd.DataFrame


def carry(field_map: FieldMap, raw: pd.DataFrame, context: TransformContext) -> transforms.Carried:
    """Apply one entry's transform to its source column(s).

    An address takes its parts together; any other transform over several columns carries each
    and keeps the values as a list (a field that holds several), problems reported per column.
    """
    if len(field_map.sources) > 1 and field_map.transform != "address":
        parts = [carry(field_map.model_copy(update={"source": column}), raw, context) for column in field_map.sources]
        values = pd.Series([[v for v in row if v is not None] or None for row in zip(*(p.values for p in parts), strict=True)],
                           index=raw.index, dtype=object)
        problems = pd.Series([next((p for p in row if p is not None), None) for row in zip(*(p.problems for p in parts), strict=True)],
                             index=raw.index, dtype=object)
        return transforms.Carried(values, problems)
    column = raw[field_map.sources[0]]
    match field_map.transform:
        case "copy":
            return transforms.Carried.clean(column.astype(object).where(column.notna(), None))
        case "text":
            return transforms.text(column, field_map.max_length)
        case "url":
            return transforms.url(column)
        case "email":
            return transforms.email(column)
        case "date":
            return transforms.date(column)
        case "datetime" if field_map.custom_field is not None and field_map.custom_field.field_type == "date":
            return transforms.date(column)  # a date field keeps the UTC date: Pipedrive has no date-time field
        case "datetime":
            return transforms.datetime_text(column)
        case "option_label" | "lookup_label":
            labels = raw.get(f"{field_map.sources[0]}__label", column)  # the extract keeps formatted values beside
            multiple = field_map.custom_field is not None and field_map.custom_field.field_type == "set"
            return transforms.option_label(labels, multiple=multiple)
        case "yes_no":
            return transforms.yes_no(column)
        case "integer":
            return transforms.integer(column, field_map.min_value, field_map.max_value)
        case "money" if field_map.custom_field is not None and field_map.custom_field.field_type == "monetary":
            currency = raw.get(CURRENCY_COLUMN, pd.Series(None, index=raw.index, dtype=object))
            return transforms.monetary(column, currency.astype("string").str.lower().map(context.currencies))
        case "money":
            return transforms.money(column)
        case "owner":
            return transforms.owner(column, context.owner_map, context.fallback_owner_id)
        case "address":
            return transforms.address(raw[field_map.sources])
        case other:
            raise NotImplementedError(f"transform {other!r} is not available for {field_map.destination}")


def transform_object(raw: pd.DataFrame, object_map: ObjectMap, context: TransformContext) -> TransformResult:
    """Every raw row ends staged, or rejected with a reason; a bad optional value rejects only that field."""
    missing = [column for column in object_map.source_columns if column not in raw.columns]
    if missing:
        raise KeyError(f"{object_map.source_entity_set} lacks the mapped column(s) {', '.join(missing)}")
    source_ids = raw[object_map.source_key].astype(str)
    staged = pd.DataFrame({"source_id": source_ids.to_numpy()}, index=raw.index)
    staged[DYNAMICS_ID_COLUMN] = source_ids
    rejects: list[pd.DataFrame] = []
    rejected_rows = pd.Series(False, index=raw.index)

    for field_map in object_map.carried_fields:
        carried = carry(field_map, raw, context)
        staged[field_map.destination] = carried.values
        has_problem = carried.problems.notna()
        if has_problem.any():
            original = raw[field_map.sources[0]].astype(str)
            rejects.append(
                pd.DataFrame(
                    {
                        "object": object_map.object,
                        "source_id": source_ids[has_problem],
                        "field": field_map.destination,
                        "value": original[has_problem],
                        "reason": carried.problems[has_problem],
                        "rule": f"{field_map.transform}:{'/'.join(field_map.sources)}",
                    }
                )
            )
        if field_map.required:
            absent = transforms.missing_required(carried.values) & ~has_problem
            if absent.any():
                rejects.append(
                    pd.DataFrame(
                        {
                            "object": object_map.object,
                            "source_id": source_ids[absent],
                            "field": WHOLE_RECORD,
                            "value": None,
                            "reason": f"required {field_map.destination} is missing; the record is not migrated",
                            "rule": f"required:{field_map.destination}",
                        }
                    )
                )
            rejected_rows |= transforms.missing_required(carried.values)

    rejects_frame = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECT_COLUMNS)
    return TransformResult(staged[~rejected_rows].reset_index(drop=True), rejects_frame[REJECT_COLUMNS])
