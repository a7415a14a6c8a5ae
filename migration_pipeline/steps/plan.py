"""Plan and confirm: write the proposed workbook, then record a person's confirmation of it.

`write_plan` starts each object's map from the shipped default (an existing file is kept: it
may hold a person's edits), proposes the owner map afresh from the extracted system users and
teams, and proposes the stage map from the sales processes (kept, like the object maps, once a
person may have edited it). `confirm_plan` refuses while anything blocks, and lists the
decisions the confirmation takes.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migration_pipeline.errors import PlanNotConfirmed
from migration_pipeline.mapping import confirmation
from migration_pipeline.mapping.owners import OwnerMap, propose_owner_map, read_owner_map, write_owner_map
from migration_pipeline.mapping.spec import ObjectMap, load_object_map
from migration_pipeline.mapping.stages import STAGES_FILE, StageMap, propose_stage_map, read_stage_map, write_stage_map
from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.warehouse.catalog import Warehouse

DEFAULTS_DIR = Path(__file__).parents[1] / "mapping" / "defaults"
OWNERS_FILE = "owners.yaml"
OWNER_COLUMN = "_ownerid_value"


@dataclass
class Plan:
    """The whole workbook, validated: a map per object, the owner map and the stage map."""

    object_maps: dict[str, ObjectMap]
    owner_map: OwnerMap
    stage_map: StageMap


@dataclass
class PlanResult:
    files: list[Path]
    plan: Plan


def write_plan(
    warehouse: Warehouse, mappings_dir: Path, pipedrive_users: Sequence[Mapping[str, Any]], fallback_email: str | None
) -> PlanResult:
    mappings_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    counts: Counter[str] = Counter()
    for item in OBJECTS:
        target = mappings_dir / item.map_file
        if not target.exists():
            shutil.copyfile(DEFAULTS_DIR / item.map_file, target)
        files.append(target)
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
    return PlanResult(files, load_plan(mappings_dir))


# The extracted tables the plan reads: every migrated object's, the owners', and the sales processes'.
PLAN_INPUT_TABLES: tuple[str, ...] = tuple(
    dict.fromkeys([*(item.entity_set for item in OBJECTS), "systemusers", "teams", "workflows", "processstages", "opportunities"])
)
OPPORTUNITY_STAGE_COLUMNS = ["opportunityid", "_processid_value", "_stageid_value", "statecode", "closeprobability"]


def load_plan(mappings_dir: Path) -> Plan:
    """The whole workbook, validated (a malformed file names itself, the entry and the problem)."""
    maps = {item.name: load_object_map(mappings_dir / item.map_file) for item in OBJECTS}
    return Plan(maps, read_owner_map(mappings_dir / OWNERS_FILE), read_stage_map(mappings_dir / STAGES_FILE))


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
