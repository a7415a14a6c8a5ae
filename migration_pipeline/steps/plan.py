"""Plan and confirm: write the proposed workbook, then record a person's confirmation of it.

`write_plan` starts each object's map from the shipped default (an existing file is kept: it
may hold a person's edits), proposes the owner map afresh from the extracted system users and
teams, and proposes the stage map from the sales processes (kept, like the object maps, once a
person may have edited it). `confirm_plan` refuses while anything blocks, and lists the
decisions the confirmation takes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from migration_pipeline.errors import PlanNotConfirmed
from migration_pipeline.mapping import confirmation
from migration_pipeline.mapping.custom_entities import (
    CUSTOM_ENTITIES_FILE,
    CustomEntityMap,
    propose_custom_entities,
    read_custom_entity_map,
    write_custom_entity_map,
)
from migration_pipeline.mapping.owners import OwnerMap, propose_owner_map, read_owner_map, write_owner_map
from migration_pipeline.mapping.spec import ObjectMap, load_object_map
from migration_pipeline.mapping.stages import STAGES_FILE, StageMap, propose_stage_map, read_stage_map, write_stage_map
from migration_pipeline.mapping.workbook import (
    append_entries,
    check_options,
    propose_object_map,
    source_attributes,
    write_object_map,
)
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.models import FieldDefinition
from migration_pipeline.steps.extract import read_cursor
from migration_pipeline.steps.objects import WORKBOOK_OBJECTS, MigratedObject
from migration_pipeline.steps.schema import read_schema
from migration_pipeline.warehouse.catalog import Warehouse

DEFAULTS_DIR = Path(__file__).parents[1] / "mapping" / "defaults"
OWNERS_FILE = "owners.yaml"
OWNER_COLUMN = "_ownerid_value"
CHOICE_ENTITIES = ("organization", "person", "deal", "product", "activity")  # entities with v2 field lists
SAMPLE_ROWS = 5000  # values the proposer profiles per table (emails, URLs, few distinct values...)


@dataclass
class Plan:
    """The whole workbook, validated: a map per object, the owner map and the stage map."""

    object_maps: dict[str, ObjectMap]
    owner_map: OwnerMap
    stage_map: StageMap
    custom_entities: CustomEntityMap


@dataclass
class PlanResult:
    files: list[Path]
    plan: Plan


def write_plan(
    warehouse: Warehouse,
    mappings_dir: Path,
    pipedrive_users: Sequence[Mapping[str, Any]],
    fallback_email: str | None,
    pipedrive_options: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> PlanResult:
    """Propose every map of the workbook from the extracted data; files a person may have edited are kept.

    `pipedrive_options`: per Pipedrive field entity (`organization`...), each standard choice field's
    option labels, so the plan can say which Dynamics labels have no option there.
    """
    mappings_dir.mkdir(parents=True, exist_ok=True)
    schema = read_schema(warehouse)
    options = pipedrive_options or {}
    files = [
        write_object_proposal(warehouse, mappings_dir, item, schema.attributes, options.get(item.field_entity, {}))
        for item in WORKBOOK_OBJECTS
    ]
    counts: Counter[str] = Counter()
    owned = set(schema.attributes.loc[schema.attributes["column"] == OWNER_COLUMN, "entity"])
    for item in WORKBOOK_OBJECTS:
        if item.logical_name not in owned:  # products, price lists... belong to the organization
            continue
        owners = warehouse.read_raw(item.entity_set, columns=[OWNER_COLUMN])[OWNER_COLUMN].dropna()
        counts.update(owners.str.lower())
    owner_map = propose_owner_map(
        warehouse.read_raw("systemusers"), warehouse.read_raw("teams"), pipedrive_users, fallback_email, counts
    )
    write_owner_map(owner_map, mappings_dir / OWNERS_FILE)
    files.append(mappings_dir / OWNERS_FILE)
    stages_path = mappings_dir / STAGES_FILE
    if not stages_path.exists():
        opportunities = warehouse.read_raw("opportunities", columns=OPPORTUNITY_STAGE_COLUMNS)
        write_stage_map(propose_stage_map(warehouse.read_raw("workflows"), warehouse.read_raw("processstages"), opportunities), stages_path)
    files.append(stages_path)
    custom_path = mappings_dir / CUSTOM_ENTITIES_FILE
    if not custom_path.exists():
        cursors = {entity_set: read_cursor(warehouse, entity_set) for entity_set in schema.entities["entity_set_name"].dropna()}
        counts_by_set = {entity_set: cursor["rows"] for entity_set, cursor in cursors.items() if cursor}
        write_custom_entity_map(propose_custom_entities(schema.entities, schema.relationships, counts_by_set), custom_path)
    files.append(custom_path)
    return PlanResult(files, load_plan(mappings_dir))


async def pipedrive_choice_options(client: PipedriveClient) -> dict[str, dict[str, list[str]]]:
    """Per field entity, each standard choice field's option labels (organization `industry`...): one list read each."""
    out: dict[str, dict[str, list[str]]] = {}
    for entity in sorted({item.field_entity for item in WORKBOOK_OBJECTS if item.field_entity in CHOICE_ENTITIES}):
        fields = [FieldDefinition.model_validate(row) async for row in client.iter_v2(f"{entity}Fields")]
        out[entity] = {
            f.field_code: [o.label for o in f.options or []] for f in fields if not f.is_custom_field and f.field_type in ("enum", "set")
        }
    return out


def write_object_proposal(
    warehouse: Warehouse,
    mappings_dir: Path,
    item: MigratedObject,
    schema_attributes: pd.DataFrame,
    pipedrive_options: Mapping[str, Sequence[str]],
) -> Path:
    """One object's workbook file: proposed in full when new, extended with new columns when it exists."""
    path = mappings_dir / item.map_file
    attributes = source_attributes(schema_attributes, item.logical_name)
    samples = warehouse.sample_raw(item.entity_set, SAMPLE_ROWS)
    if path.exists():
        current = load_object_map(path)
        extended = check_options(propose_object_map(item.name, item.entity_set, attributes, samples, default=current), attributes, pipedrive_options)
        append_entries(path, extended.fields[len(current.fields):])
        return path
    default_path = DEFAULTS_DIR / item.map_file
    default = load_object_map(default_path) if default_path.exists() else None
    proposed = propose_object_map(item.name, item.entity_set, attributes, samples, default)
    write_object_map(check_options(proposed, attributes, pipedrive_options), path)
    return path


# The extracted tables the plan reads: every migrated object's, the owners', and the sales processes'.
PLAN_INPUT_TABLES: tuple[str, ...] = tuple(
    dict.fromkeys([*(item.entity_set for item in WORKBOOK_OBJECTS), "systemusers", "teams", "workflows", "processstages"])
)
OPPORTUNITY_STAGE_COLUMNS = ["opportunityid", "_processid_value", "_stageid_value", "statecode", "closeprobability"]


def load_plan(mappings_dir: Path) -> Plan:
    """The whole workbook, validated (a malformed file names itself, the entry and the problem)."""
    maps = {item.name: load_object_map(mappings_dir / item.map_file) for item in WORKBOOK_OBJECTS}
    return Plan(
        maps,
        read_owner_map(mappings_dir / OWNERS_FILE),
        read_stage_map(mappings_dir / STAGES_FILE),
        read_custom_entity_map(mappings_dir / CUSTOM_ENTITIES_FILE),
    )


def open_questions(plan: Plan) -> tuple[list[str], list[str]]:
    """(blocking problems, decisions the confirmation takes), each a sentence."""
    owner_map, stage_map = plan.owner_map, plan.stage_map
    blocking = [
        f"owner {o.name or o.dynamics_id} ({o.email or o.kind}, {o.records} records): {o.reason}" for o in owner_map.blocking
    ]
    if stage_map.unmapped_opportunities:
        blocking.append(
            f"{stage_map.unmapped_opportunities} opportunities are in a sales process or stage that {STAGES_FILE} does not map"
        )
    decisions = [
        f"{o.records} records of {o.name or o.dynamics_id} ({o.email or o.kind}) go to the fallback user: {o.reason}"
        for o in owner_map.owners
        if o.status in ("fallback", "needs_pipedrive_account") and o.records > 0
    ]
    for name, object_map in sorted(plan.object_maps.items()):
        for entry in object_map.fields:
            sources = "/".join(entry.sources)
            if entry.status == "needs_decision":
                default = (f"new {entry.custom_field.field_type} custom field {entry.custom_field.name!r}" if entry.custom_field
                           else entry.target or "not migrated")
                decisions.append(f"{name}.{sources} -> {default} (proposed default: {entry.notes})")
            if entry.unmapped_options and entry.carried:
                shown = ", ".join(entry.unmapped_options[:5]) + (", ..." if len(entry.unmapped_options) > 5 else "")
                decisions.append(f"{name}.{sources}: {len(entry.unmapped_options)} labels have no Pipedrive option in "
                                 f"{entry.destination} ({shown}); those values are not carried and are listed in staged.rejects")
    if stage_map.opportunities_without_stage:
        decisions.append(
            f"{stage_map.opportunities_without_stage} opportunities with no stage go to the first stage of their pipeline"
        )
    return blocking, decisions


def confirm_plan(mappings_dir: Path, confirmed_by: str | None = None) -> confirmation.Confirmation:
    blocking, decisions = open_questions(load_plan(mappings_dir))
    if blocking:
        raise PlanNotConfirmed(
            "The plan cannot be confirmed: " + "; ".join(blocking) + ".",
            hint="Set PIPEDRIVE_FALLBACK_OWNER_EMAIL to an active Pipedrive user (or invite these owners), "
            "run `migrate plan` again, then `migrate confirm`.",
        )
    return confirmation.confirm(mappings_dir, decisions, confirmed_by)
