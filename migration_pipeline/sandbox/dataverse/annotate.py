"""Instance annotations asked for with `Prefer: odata.include-annotations=...`.

The dataset stores raw values only; like the service, the simulator derives the rest:
`@OData.Community.Display.V1.FormattedValue` (choice labels, the referenced row's primary
name, money with its currency symbol, Yes/No, dates as the user sees them, grouped numbers),
and on lookups `@Microsoft.Dynamics.CRM.lookuplogicalname` and
`@Microsoft.Dynamics.CRM.associatednavigationproperty`. Formatting assumes an en-US user in
UTC, which is what an application user without personal settings gets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from migration_pipeline.sandbox.dataset import LOOKUP_LOGICAL_NAME, LOOKUP_TYPES, AttributeDef, RelationshipDef
from migration_pipeline.sandbox.dataverse.odata import Preferences
from migration_pipeline.sandbox.dataverse.serialize import column_values
from migration_pipeline.sandbox.dataverse.store import Store, TableSnapshot

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_CHOICE_TYPES = frozenset({"Picklist", "State", "Status"})


class Annotator:
    """Computes the annotations of one page's rows."""

    def __init__(self, store: Store, relationships: list[RelationshipDef]) -> None:
        self.store = store
        self._navigation = {
            (r.referencing_entity, r.referencing_attribute, r.referenced_entity): r.referencing_entity_navigation_property_name
            for r in relationships
            if r.relationship_type == "OneToManyRelationship" and r.referencing_entity_navigation_property_name
        }

    def annotations(
        self, snapshot: TableSnapshot, positions: np.ndarray, columns: list[str], preferences: Preferences
    ) -> list[tuple[str, list[Any]]]:
        wants = {term: preferences.wants(term) for term in (FORMATTED, LOGICAL_NAME, NAVIGATION)}
        if not any(wants.values()):
            return []
        rows = snapshot.frame.take(positions)
        by_column = {attribute.column: attribute for attribute in snapshot.entity.attributes}
        result: list[tuple[str, list[Any]]] = []
        for column in columns:
            attribute = by_column.get(column)
            if attribute is None or column not in rows.columns:
                continue
            values = rows[column]
            if attribute.attribute_type in LOOKUP_TYPES:
                targets = self._targets(attribute, rows)
                if wants[LOGICAL_NAME]:
                    result.append((f"{column}@{LOGICAL_NAME}", targets))
                if wants[NAVIGATION]:
                    result.append((f"{column}@{NAVIGATION}", self._navigation_names(snapshot, attribute, targets)))
            if wants[FORMATTED]:
                formatted = self._formatted(attribute, values, rows)
                if formatted is not None:
                    result.append((f"{column}@{FORMATTED}", formatted))
        return result

    # --- lookups ---

    def _targets(self, attribute: AttributeDef, rows: pd.DataFrame) -> list[str | None]:
        stored = attribute.column + LOOKUP_LOGICAL_NAME
        if stored in rows.columns:
            return column_values(rows[stored])
        target = attribute.targets[0] if attribute.targets else None
        return [None if value is None else target for value in column_values(rows[attribute.column])]

    def _navigation_names(self, snapshot: TableSnapshot, attribute: AttributeDef, targets: list[str | None]) -> list[str | None]:
        entity = snapshot.entity.logical_name
        names: dict[str, str] = {}
        for target in {t for t in targets if t is not None}:
            default = f"{attribute.logical_name}_{target}" if attribute.is_polymorphic and attribute.attribute_type != "Owner" else attribute.logical_name
            names[target] = self._navigation.get((entity, attribute.logical_name, target)) or default
        return [None if target is None else names[target] for target in targets]

    def _lookup_names(self, attribute: AttributeDef, values: pd.Series, rows: pd.DataFrame) -> list[str | None]:
        targets = pd.Series(self._targets(attribute, rows), index=values.index, dtype=object)
        names = pd.Series(None, index=values.index, dtype=object)
        for target in targets.dropna().unique():
            table = self.store.table_for(str(target))
            if table is None:
                continue
            mask = targets == target
            names[mask] = values[mask].map(table.names())
        return column_values(names)

    # --- formatted values ---

    def _formatted(self, attribute: AttributeDef, values: pd.Series, rows: pd.DataFrame) -> list[str | None] | None:
        kind = attribute.attribute_type
        if kind in _CHOICE_TYPES:
            return column_values(values.map({option.value: option.label for option in attribute.options}))
        if kind == "MultiSelectPicklist":
            labels = {str(option.value): option.label for option in attribute.options}
            return [
                None if text is None else "; ".join(labels.get(part.strip(), part.strip()) for part in str(text).split(","))
                for text in column_values(values)
            ]
        if kind == "Boolean":
            true_label, false_label = self._boolean_labels(attribute)
            return [None if value is None else (true_label if value else false_label) for value in column_values(values)]
        if kind in LOOKUP_TYPES:
            return self._lookup_names(attribute, values, rows)
        if kind == "Money":
            return self._money(attribute, values, rows)
        if kind == "Integer":
            return [None if value is None else f"{int(value):,}" for value in column_values(values)]
        if kind in {"Decimal", "Double"}:
            precision = attribute.precision if attribute.precision is not None else 2
            return [None if value is None else f"{value:,.{precision}f}" for value in column_values(values)]
        if kind == "DateTime":
            return _dates(values, date_only=attribute.format == "DateOnly")
        if kind == "EntityName":
            display = {entity.logical_name: entity.display_name for entity in self.store.entities.values()}
            return [None if value is None else display.get(value, value) for value in column_values(values)]
        return None

    @staticmethod
    def _boolean_labels(attribute: AttributeDef) -> tuple[str, str]:
        labels = {option.value: option.label for option in attribute.options}
        return labels.get(1, "Yes"), labels.get(0, "No")

    def _money(self, attribute: AttributeDef, values: pd.Series, rows: pd.DataFrame) -> list[str | None]:
        currencies = self.store.table_for("transactioncurrency")
        base = self.store.organization.base_currency_id
        if attribute.logical_name.endswith("_base") or "_transactioncurrencyid_value" not in rows.columns:
            currency_ids = [base] * len(rows)
        else:
            currency_ids = [key or base for key in column_values(rows["_transactioncurrencyid_value"])]
        symbols: dict[str, tuple[str, int]] = {}
        if currencies is not None:
            frame = currencies.frame
            for key in set(currency_ids):
                position = currencies.position(key) if key else None
                if position is not None:
                    row = frame.iloc[position]
                    precision = row.get("currencyprecision")
                    symbols[key] = (str(row.get("currencysymbol") or ""), 2 if pd.isna(precision) else int(precision))
        result: list[str | None] = []
        for value, key in zip(column_values(values), currency_ids, strict=True):
            if value is None:
                result.append(None)
                continue
            symbol, precision = symbols.get(key, ("", 2))
            sign = "-" if value < 0 else ""
            result.append(f"{sign}{symbol}{abs(value):,.{precision}f}")
        return result


def _dates(values: pd.Series, date_only: bool) -> list[str | None]:
    """`5/1/2024` or `5/1/2024 10:07 AM`, vectorised."""
    moments = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    present = moments.notna().to_numpy()
    parts = moments.dt

    def text(numbers: pd.Series) -> pd.Series:
        return numbers.fillna(0).astype("int64").astype("str")

    shown = text(parts.month) + "/" + text(parts.day) + "/" + text(parts.year)
    if not date_only:
        hour = parts.hour.fillna(0).astype("int64")
        meridiem = pd.Series(np.where(hour < 12, " AM", " PM"), index=values.index, dtype="str")
        shown = shown + " " + text((hour + 11) % 12 + 1) + ":" + text(parts.minute).str.zfill(2) + meridiem
    return [value if keep else None for value, keep in zip(shown.tolist(), present, strict=True)]
