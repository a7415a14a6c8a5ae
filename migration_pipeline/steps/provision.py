"""Provision: the custom fields the plan needs, created in Pipedrive (or found there) before any record moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from migration_pipeline.errors import ApiError, BudgetExhausted
from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.payload import PayloadFields
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.errors import TrafficBlocked, WriteInDoubt
from migration_pipeline.pipedrive.fields import WRITE_ATTEMPTS, CustomFieldRegistry
from migration_pipeline.steps.objects import FIELD_OBJECTS
from migration_pipeline.mapping.rules import deals, leads, persons, products
from migration_pipeline.mapping.rules.custom_entities import custom_fields as custom_entity_fields
from migration_pipeline.mapping.spec import CustomFieldTarget
from migration_pipeline.steps.plan import Plan, load_plan
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, JournalEntry, request_digest

# The custom fields each object's rules write (besides its workbook's).
RULE_CUSTOM_FIELDS = {"persons": persons.CUSTOM_FIELDS, "products": products.CUSTOM_FIELDS, "deals": deals.CUSTOM_FIELDS,
                      "leads": (*deals.CUSTOM_FIELDS[:3], *leads.CUSTOM_FIELDS)}  # leads: the deal fields their rules fill
FIELDS_TABLE = "idmap.fields"
FIELDS_COLUMNS = "object VARCHAR, name VARCHAR, field_code VARCHAR, field_type VARCHAR, is_custom BOOLEAN, options JSON"
OPTION_TYPES = ("enum", "set")


# The journal file of custom-field creates (the step has no run of its own): `steps/rollback.py` removes them.
PROVISION_RUN = "provisioning"


async def provision_custom_fields(client: PipedriveClient, warehouse: Warehouse, mappings_dir: Path,
                                  run_id: str = PROVISION_RUN) -> pd.DataFrame:
    """Ensure every custom field of the plan exists, then store what payloads need of each object's fields.

    `idmap.fields` gets one row per custom field of the plan (name, key, type, options) and
    one per standard option field (`industry`...), whose option labels payloads turn into ids.
    """
    require_confirmed(mappings_dir)
    plan = load_plan(mappings_dir)
    registry = CustomFieldRegistry(client)
    rows = []
    for item in FIELD_OBJECTS:
        wanted = custom_fields_for(plan, item.name)
        entity = "deal" if item.field_entity == "lead" else item.field_entity  # leads use the deal fields
        for custom in wanted:
            if await registry.find(entity, custom.name) is not None:
                await registry.ensure(item.field_entity, custom.name, custom.field_type, custom.options)
                continue
            # A field this step creates is journaled (intent before, code after), so a rollback can remove it.
            with Journal(warehouse.journal_dir, run_id) as journal:
                intent = journal.intent("create", "fields", f"{entity}:{custom.name}",
                                        request_digest("POST", f"{entity}Fields", custom.name))
                with _outcome_on_error(journal, intent):
                    code = await registry.ensure(item.field_entity, custom.name, custom.field_type, custom.options)
                journal.outcome(intent, "ok", pipedrive_id=code)
        names = {custom.name for custom in wanted}
        for definition in await registry.fields(item.field_entity):
            standard_options = not definition.is_custom_field and definition.field_type in OPTION_TYPES
            if (definition.is_custom_field and definition.field_name in names) or standard_options:
                options = {option.label: option.id for option in definition.options or []}
                rows.append({
                    "object": item.name,
                    "name": definition.field_name if definition.is_custom_field else definition.field_code,
                    "field_code": definition.field_code,
                    "field_type": definition.field_type,
                    "is_custom": definition.is_custom_field,
                    "options": json.dumps(options) if definition.field_type in OPTION_TYPES else None,
                })
    frame = pd.DataFrame(rows, columns=["object", "name", "field_code", "field_type", "is_custom", "options"])
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
    warehouse.replace_rows(FIELDS_TABLE, frame)
    return frame[frame["is_custom"]]


def custom_fields_for(plan: Plan, object_name: str) -> list[CustomFieldTarget]:
    """Every custom field `object_name` needs: its workbook's ("Dynamics ID" first), its rules', and the custom
    entities' flattened onto it; a name two of them give is provisioned once, as the first gives it."""
    wanted = [*plan.object_maps[object_name].custom_fields, *RULE_CUSTOM_FIELDS.get(object_name, ())]
    for entity in plan.custom_entities.entities:
        if entity.target_object == object_name:
            wanted += custom_entity_fields(entity)
    return list({field.name: field for field in reversed(wanted)}.values())[::-1]


async def create_journaled(client: PipedriveClient, warehouse: Warehouse, run_id: str, object_name: str, key: str,
                           resource: str, body: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    """`create_named`, journaled like every create (intent before, id after) so that a rollback removes it."""
    with Journal(warehouse.journal_dir, run_id) as journal:
        intent = journal.intent("create", object_name, key, request_digest("POST", resource, body))
        with _outcome_on_error(journal, intent):
            created = await create_named(client, resource, body, params)
        journal.outcome(intent, "ok", pipedrive_id=created["id"])
    return created


@contextmanager
def _outcome_on_error(journal: Journal, intent: JournalEntry) -> Iterator[None]:
    """Journal how a provisioning create failed (in doubt, not sent, refused), then let the error go on."""
    try:
        yield
    except WriteInDoubt as error:
        journal.outcome(intent, "in_doubt", detail=error.message)
        raise
    except (BudgetExhausted, TrafficBlocked) as error:
        journal.outcome(intent, "not_applied", detail=error.message)
        raise
    except ApiError as error:
        journal.outcome(intent, "failed", detail=error.message)
        raise


async def create_named(client: PipedriveClient, resource: str, body: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    """Create a record found by its name (a pipeline, a stage, a lead label). A create left in doubt (a 5xx, a
    timeout) is settled by listing them: the one Pipedrive applied is used, and only a proven absence is resent."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await client.create(resource, body)
        except WriteInDoubt:
            if resource == "leadLabels":
                listed = list(await client.request("GET", resource, version="v1") or [])
            else:
                listed = [record async for record in client.iterate(resource, params)]
            found = [record for record in listed if record.get("name") == body["name"]]
            if found:
                return found[0]
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def provision_pipelines(client: PipedriveClient, warehouse: Warehouse, mappings_dir: Path, run_id: str) -> dict[str, str]:
    """A pipeline per sales process and its stages, in order, found by name or created; `idmap.stages` keys them.

    The key is "<pipeline>/<stage>", what staged deals hold in `ref:stage_id:stages`. Two Dynamics
    stages naming one Pipedrive stage share it.
    """
    require_confirmed(mappings_dir)
    plan = load_plan(mappings_dir)
    pipelines = {p["name"]: p for p in [row async for row in client.iter_v2("pipelines")]}
    stage_ids: dict[str, str] = {}
    for entry in plan.stage_map.pipelines:
        pipeline = pipelines.get(entry.pipedrive_pipeline) or await create_journaled(
            client, warehouse, run_id, "pipelines", entry.pipedrive_pipeline, "pipelines", {"name": entry.pipedrive_pipeline})
        existing = {s["name"]: s for s in [row async for row in client.iter_v2("stages", {"pipeline_id": pipeline["id"]})]}
        for stage in entry.stages:
            key = f"{entry.pipedrive_pipeline}/{stage.pipedrive_stage}"
            if key in stage_ids:
                continue
            found = existing.get(stage.pipedrive_stage)
            if found is None:
                body = {"name": stage.pipedrive_stage, "pipeline_id": pipeline["id"]}
                if stage.probability is not None:
                    body["deal_probability"] = stage.probability
                found = await create_journaled(client, warehouse, run_id, "stages", key, "stages", body, {"pipeline_id": pipeline["id"]})
                existing[stage.pipedrive_stage] = found
            stage_ids[key] = str(found["id"])
    warehouse.record_ids("stages", stage_ids, run_id)
    return stage_ids


def provisioned_fields(warehouse: Warehouse, object_name: str) -> pd.DataFrame:
    """The rows of `idmap.fields` for one object."""
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
        return con.execute(f"SELECT * FROM {FIELDS_TABLE} WHERE object = ?", [object_name]).df()


LINKED_OBJECTS = ("organizations", "persons", "products", "deals", "stages", "leads", "lead_labels")
LEAD_LABELS_TABLE = "lead_labels"
LEAD_LABEL_COLOR = "gray"


async def provision_lead_labels(client: PipedriveClient, warehouse: Warehouse, run_id: str) -> dict[str, str]:
    """Every lead label staged leads carry ("Disqualified (Dynamics)"...), found by name or created; `idmap.lead_labels`
    keys each by its name, what staged leads hold in `ref:label_ids:lead_labels`."""
    if not warehouse.staged_path("leads").exists():
        return {}
    staged = warehouse.read_staged("leads")
    column = f"ref:label_ids:{LEAD_LABELS_TABLE}"
    names = sorted({str(name) for labels in staged.get(column, pd.Series(dtype=object)).dropna() for name in labels})
    existing = {label["name"]: str(label["id"]) for label in await client.request("GET", "leadLabels", version="v1") or []}
    for name in names:
        if name not in existing:
            created = await create_journaled(client, warehouse, run_id, LEAD_LABELS_TABLE, name, "leadLabels",
                                             {"name": name, "color": LEAD_LABEL_COLOR})
            existing[name] = str(created["id"])
    labels = {name: existing[name] for name in names}
    warehouse.record_ids(LEAD_LABELS_TABLE, labels, run_id)
    return labels


def payload_fields(warehouse: Warehouse, object_name: str, linked_objects: tuple[str, ...] = LINKED_OBJECTS) -> PayloadFields:
    """What turns this object's staged rows into request bodies: custom-field keys and types, option ids, ID maps."""
    rows = provisioned_fields(warehouse, object_name)
    custom = rows[rows["is_custom"].astype(bool)]
    options = {row.name: json.loads(row.options) for row in rows.itertuples() if isinstance(row.options, str)}
    return PayloadFields(
        codes=dict(zip(custom["name"], custom["field_code"], strict=True)),
        types=dict(zip(custom["name"], custom["field_type"], strict=True)),
        options=options,
        links=warehouse.idmaps(linked_objects),
    )
