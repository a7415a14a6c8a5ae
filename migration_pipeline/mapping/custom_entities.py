"""Custom entities: Pipedrive has no custom objects, so each custom entity flattens onto its nearest object.

"Nearest" is read from the relationships: a custom entity linked to accounts (by a lookup on it,
or by an N:N intersect) lands on organizations; to contacts, on persons; to opportunities, on
deals; accounts first, since they are what most custom entities describe. On the target record
the entity surfaces as custom fields: the linked rows' names and ids, pipe-delimited (one record
may have several), so nothing of the link is lost and the ids lead back to the raw table. The
flattening itself is the rule in `mapping/rules/custom_entities.py`.

`custom_entities.yaml` in the mappings dir is this model; a person may change the target or
the field names, or drop an entity (`target_object: none`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from migration_pipeline.mapping.spec import CustomFieldTarget, load_model, write_model

CUSTOM_ENTITIES_FILE = "custom_entities.yaml"
# Dynamics table -> the Pipedrive object a custom entity linked to it flattens onto, nearest first.
TARGETS: dict[str, str] = {"account": "organizations", "contact": "persons", "opportunity": "deals"}


class CustomEntityPlan(BaseModel):
    """How one custom entity reaches its target: a lookup column on it, or an N:N intersect table."""

    model_config = ConfigDict(extra="forbid")

    entity: str
    entity_set: str
    display_name: str
    target_object: Literal["organizations", "persons", "deals", "none"]
    link: Literal["lookup", "many_to_many"]
    lookup_column: str | None = None  # `_x_value` on the custom entity, for a lookup
    intersect_entity_set: str | None = None  # for N:N: the intersect table and its two key columns
    intersect_entity_key: str | None = None
    intersect_target_key: str | None = None
    primary_id: str
    primary_name: str | None = None
    names_field: CustomFieldTarget
    ids_field: CustomFieldTarget
    records: int = 0


class CustomEntityMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entities: list[CustomEntityPlan]


def propose_custom_entities(
    entities: pd.DataFrame, relationships: pd.DataFrame, counts: dict[str, int] | None = None
) -> CustomEntityMap:
    """From `raw.schema_entities` and `raw.schema_relationships`: a plan for every custom, non-intersect entity."""
    counts = counts or {}
    plans: list[CustomEntityPlan] = []
    custom = entities[entities["is_custom_entity"].astype(bool) & ~entities["is_intersect"].astype(bool)]
    by_name = entities.set_index("logical_name")
    for entity in custom.sort_values("logical_name").itertuples():
        plan = _nearest_link(entity, relationships, by_name)
        if plan is not None:
            plan.records = counts.get(entity.entity_set_name, 0)
            plans.append(plan)
    return CustomEntityMap(entities=plans)


def _nearest_link(entity: object, relationships: pd.DataFrame, by_name: pd.DataFrame) -> CustomEntityPlan | None:
    name = entity.logical_name  # type: ignore[attr-defined]
    label = entity.display_name or name  # type: ignore[attr-defined]
    common = dict(
        entity=name,
        entity_set=entity.entity_set_name,  # type: ignore[attr-defined]
        display_name=label,
        primary_id=entity.primary_id_attribute,  # type: ignore[attr-defined]
        primary_name=entity.primary_name_attribute if isinstance(entity.primary_name_attribute, str) else None,  # type: ignore[attr-defined]
        names_field=CustomFieldTarget(name=f"{label} (Dynamics)", field_type="text"),
        ids_field=CustomFieldTarget(name=f"{label} IDs (Dynamics)", field_type="text"),
    )
    one_to_many = relationships[
        (relationships["relationship_type"] == "OneToManyRelationship") & (relationships["referencing_entity"] == name)
    ]
    many_to_many = relationships[
        (relationships["relationship_type"] == "ManyToManyRelationship")
        & ((relationships["entity1"] == name) | (relationships["entity2"] == name))
    ]
    for target, target_object in TARGETS.items():
        for link in many_to_many.itertuples():
            other = link.entity2 if link.entity1 == name else link.entity1
            if other != target or link.intersect_entity not in by_name.index:
                continue
            return CustomEntityPlan(
                **common,
                target_object=target_object,  # type: ignore[arg-type]
                link="many_to_many",
                intersect_entity_set=str(by_name.at[link.intersect_entity, "entity_set_name"]),
                intersect_entity_key=entity.primary_id_attribute,  # type: ignore[attr-defined]
                intersect_target_key=str(by_name.at[target, "primary_id_attribute"]),
            )
        for link in one_to_many[one_to_many["referenced_entity"] == target].itertuples():
            return CustomEntityPlan(
                **common, target_object=target_object, link="lookup", lookup_column=f"_{link.referencing_attribute}_value"  # type: ignore[arg-type]
            )
    return None


def write_custom_entity_map(custom: CustomEntityMap, path: Path) -> None:
    header = (
        "# Custom entities -> custom fields on their nearest Pipedrive object (Pipedrive has no custom objects).\n"
        "# Linked rows' names and ids are kept pipe-delimited. Set `target_object: none` to leave an entity out.\n"
    )
    write_model(custom, path, header)


def read_custom_entity_map(path: Path) -> CustomEntityMap:
    return load_model(path, CustomEntityMap)
