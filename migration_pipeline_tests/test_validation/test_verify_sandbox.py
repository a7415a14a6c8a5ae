"""The field-level diff of every loaded object, after a real migration into the Pipedrive simulator.

One module-scoped migration (the `full_migration` job, in process, against a fresh 300-record
sandbox: every object type is there); then the tests, in order: a clean load diffs clean on
every object, read back through lists and bulk reads only; a file whose bytes were swapped (same
size) is caught by the content checksum; and one wrong value planted per object type in the
simulator's store is each reported with its object, record and field, while values that differ
only in form (an email's case, a phone's punctuation, a v1 time) are not.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Collection, Iterator
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from migration_pipeline.definitions import build_definitions
from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.pipedrive.client import PipedriveClient, run_sync
from migration_pipeline.sandbox.pipedrive.simulator import Simulator
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.settings import Settings
from migration_pipeline.steps.existing import existing_ids
from migration_pipeline.steps.plan import confirm_plan, write_plan
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.verify import ARCHIVE, ARCHIVE_CANDIDATES, VERIFIED, FileBodies, verify_object
from migration_pipeline.validation.diff import RECORD, DiffResult
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# What verify may call: list pages, the bulk deal-product read, and relationships by id (2 tokens; see steps/verify.py).
READS = {
    "GET /api/v2/organizations", "GET /api/v2/persons", "GET /api/v2/products", "GET /api/v2/deals", "GET /api/v2/deals/archived",
    "GET /api/v2/deals/products", "GET /api/v2/activities", "GET /api/v1/leads", "GET /api/v1/leads/archived", "GET /api/v1/notes",
    "GET /api/v1/files", "GET /api/v1/organizationRelationships", "GET /api/v1/organizationRelationships/{id}",
}
Key = tuple[str, str, str, str]  # object, source id, Pipedrive id, field


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Settings, Warehouse]]:
    with Sandbox(SandboxConfig(records=300, seed=7)) as sandbox:
        settings = settings_for(sandbox, tmp_path_factory.mktemp("verify"))
        definitions = build_definitions(settings)

        def run(job: str) -> dg.ExecuteInProcessResult:
            return definitions.resolve_job_def(job).execute_in_process(run_config=QUIET, raise_on_error=False,
                                                                       instance=dg.DagsterInstance.ephemeral())

        assert run("extract").success
        warehouse = Warehouse(settings.migration_home)
        write_plan(warehouse, settings.migration_mappings_dir, run_sync(settings, lambda client: client.users()),
                   settings.pipedrive_fallback_owner_email)
        confirm_plan(settings.migration_mappings_dir, confirmed_by="test")
        assert run("full_migration").success
        yield sandbox, settings, warehouse


def verify_all(settings: Settings, warehouse: Warehouse, files: FileBodies | None = None) -> tuple[dict[str, DiffResult], dict[str, Any]]:
    """Every load step verified with one client; the results, and what the client spent."""

    async def work(client: PipedriveClient) -> tuple[dict[str, DiffResult], dict[str, Any]]:
        results = {name: await verify_object(client, warehouse, name, files=files) for name in VERIFIED}
        return results, client.usage.snapshot()

    return run_sync(settings, work)


def reported(warehouse: Warehouse) -> set[Key]:
    rows = warehouse.query("SELECT object, source_id, pipedrive_id, field FROM validation.field_diff")
    return {tuple(row) for row in rows.itertuples(index=False)}  # type: ignore[misc]


def simulator(sandbox: Sandbox) -> Simulator:
    return sandbox.pipedrive_app.state.simulator


# Fields each object's diff must have compared on this dataset: a diff that compares nothing is not clean.
COMPARED = {
    "organizations": {RECORD, "name", "owner_id", "address", "Dynamics ID", "Customer Tier", "Annual Revenue", "Primary Contact"},
    "organizations_relationships": {RECORD, "type", "rel_owner_org_id", "rel_linked_org_id"},
    "persons": {RECORD, "name", "emails", "phones", "org_id", "owner_id", "Dynamics ID", "Status"},
    "products": {RECORD, "name", "prices", "Dynamics ID", "Current Cost"},
    "deals": {RECORD, "title", "stage_id", "value", "status", "won_time", "close_time", "expected_close_date", "person_id", "org_id"},
    "deal_products": {RECORD, "deal_id", "product_id", "item_price", "quantity", "discount"},
    "leads": {RECORD, "title", "value", "label_ids", "is_archived", "person_id", "organization_id", "Rating", "Business Phone"},
    "activities": {RECORD, "subject", "type", "owner_id", "due_date", "due_time", "participants", "deal_id", "org_id"},
    "notes": {RECORD, "content", "add_time", "person_id", "org_id", "deal_id"},
    "files": {RECORD, "file_name", "size", "parent"},
    ARCHIVE: {"is_archived"},
}


def test_a_clean_load_diffs_clean_on_every_object_through_lists_and_bulk_reads_only(
    migrated: tuple[Sandbox, Settings, Warehouse],
) -> None:
    sandbox, settings, warehouse = migrated
    results, usage = verify_all(settings, warehouse)

    assert set(results) == set(COMPARED)
    for name, result in results.items():
        assert result.clean, (name, result.differences.head().to_dict("records"))
        summary = result.summary.set_index("field")
        assert COMPARED[name] <= set(summary.index), (name, COMPARED[name] - set(summary.index))
        assert (summary["compared"] == summary["equal"]).all(), name
        if name != ARCHIVE:  # every record of the ID map is counted, present or linked
            loaded = len(warehouse.idmap(name))
            assert summary["compared"].get(RECORD, 0) + summary["compared"].get("(linked existing)", 0) == loaded, name
    assert results[ARCHIVE].summary.set_index("field").loc["is_archived", "compared"] == len(warehouse.read_staged(ARCHIVE_CANDIDATES))
    assert set(usage["requests_by_operation"]) <= READS
    assert warehouse.query("SELECT count(*) AS n FROM validation.field_diff")["n"][0] == 0


def test_a_file_whose_bytes_changed_at_the_same_size_fails_its_checksum(migrated: tuple[Sandbox, Settings, Warehouse]) -> None:
    sandbox, settings, warehouse = migrated
    sim = simulator(sandbox)
    files = warehouse.idmap("files")
    source_id, pipedrive_id = sorted(files.items())[0]
    original = sim.files[int(pipedrive_id)]
    sim.files[int(pipedrive_id)] = bytes(reversed(original))  # same size, other content
    assert len(sim.files[int(pipedrive_id)]) == len(original) and sim.files[int(pipedrive_id)] != original
    try:
        with DataverseClient.from_settings(settings) as dataverse:

            async def source(annotation_id: str) -> bytes:
                return await asyncio.to_thread(dataverse.download_annotation_body, annotation_id)

            async def held(file_id: str) -> bytes:  # the simulator's store: the client has no download call yet
                return sim.files[int(file_id)]

            result = run_sync(settings, lambda client: verify_object(client, warehouse, "files", files=FileBodies(source, held, len(files))))
    finally:
        sim.files[int(pipedrive_id)] = original

    rows = result.differences
    assert rows[["source_id", "pipedrive_id", "field"]].values.tolist() == [[source_id, pipedrive_id, "checksum"]]
    assert rows["actual"][0] == hashlib.sha256(bytes(reversed(original))).hexdigest()
    assert result.summary.set_index("field").loc["checksum", "compared"] == len(files)


def _pick(warehouse: Warehouse, name: str, column: str, skip: Collection[str] = (), where: Any = None) -> tuple[str, str, dict[str, Any]]:
    """A loaded record of `name` (not linked to a pre-existing one) whose staged `column` has a value: (source id, Pipedrive id, row)."""
    idmap = warehouse.idmap(name)
    untouched = existing_ids(warehouse, name) | set(skip)
    for row in warehouse.read_staged(name).sort_values("source_id").to_dict("records"):
        value = row.get(column)
        if row["source_id"] in idmap and row["source_id"] not in untouched and value is not None and not (isinstance(value, float) and pd.isna(value)):
            if where is None or where(row):
                return row["source_id"], idmap[row["source_id"]], row
    raise AssertionError(f"no loaded {name} with {column}")


def test_one_wrong_value_per_object_is_reported_with_its_object_record_and_field(migrated: tuple[Sandbox, Settings, Warehouse]) -> None:
    sandbox, settings, warehouse = migrated
    sim = simulator(sandbox)
    store = {table: {str(record["id"]): record for record in rows} for table, rows in sim.snapshot().items()}
    change = sim.change_record
    planted: set[Key] = set()

    def plant(name: str, table: str, source_id: str, pipedrive_id: str, field: str, changes: dict[str, Any]) -> None:
        change(table, pipedrive_id if table == "leads" else int(pipedrive_id), changes)
        planted.add((name, source_id, pipedrive_id, field))

    # organizations: a custom option field (reported by its labels), and a name with spaces around it (not a difference)
    org_fields = payload_fields(warehouse, "organizations")
    tier = org_fields.codes["Customer Tier"]
    source_id, org_id, row = _pick(warehouse, "organizations", "custom:Customer Tier", where=lambda r: r["custom:Customer Tier"] != "Platinum")
    plant("organizations", "organizations", source_id, org_id, "Customer Tier", {"custom_fields": {tier: org_fields.options["Customer Tier"]["Platinum"]}})
    other, other_org_id, other_row = _pick(warehouse, "organizations", "name", skip={source_id})
    change("organizations", int(other_org_id), {"name": f"  {other_row['name']}  "})

    # organization relationships: the parent link moved to another organization
    source_id, rel_id, row = _pick(warehouse, "organizations_relationships", "type")
    plant("organizations_relationships", "organization_relationships", source_id, rel_id, "rel_owner_org_id", {"rel_owner_org_id": int(org_id)})

    # persons: an email changed; another's email in capitals with spaces and its phone re-punctuated (not differences)
    source_id, person_id, row = _pick(warehouse, "persons", "emails")
    plant("persons", "persons", source_id, person_id, "emails", {"emails": [{"value": "someone.else@example.com", "primary": True, "label": "work"}]})
    source_id, other_person, row = _pick(warehouse, "persons", "phones", skip={source_id}, where=lambda r: r["emails"] is not None)
    held = store["persons"][other_person]
    change("persons", int(other_person), {
        "emails": [{**email, "value": f" {email['value'].upper()} "} for email in held["emails"]],
        "phones": [{**phone, "value": repunctuated(phone["value"])} for phone in held["phones"]],
    })

    # products: a price
    source_id, product_id, row = _pick(warehouse, "products", "prices")
    prices = [dict(price) for price in store["products"][product_id]["prices"]]
    prices[0]["price"] = prices[0]["price"] + 1
    plant("products", "products", source_id, product_id, "prices", {"prices": prices})

    # deals: the stage (reported by "<pipeline>/<stage>"), and a won time in v1's form (not a difference)
    stages = warehouse.idmap("stages")
    staged_deal, deal_id, row = _pick(warehouse, "deals", "ref:stage_id:stages")
    other_stage = next(stage for key, stage in sorted(stages.items()) if stage != stages[row["ref:stage_id:stages"]])
    plant("deals", "deals", staged_deal, deal_id, "stage_id", {"stage_id": int(other_stage)})
    won, won_deal, row = _pick(warehouse, "deals", "won_time", skip={staged_deal})
    change("deals", int(won_deal), {"won_time": store["deals"][won_deal]["won_time"].replace("T", " ").removesuffix("Z")})

    # deal archive: a closed deal the rules archived, unarchived
    candidates = set(warehouse.read_staged(ARCHIVE_CANDIDATES)["source_id"])
    source_id, archived_deal, _ = _pick(warehouse, "deals", "title", skip={staged_deal, won}, where=lambda r: r["source_id"] in candidates)
    plant(ARCHIVE, "deals", source_id, archived_deal, "is_archived", {"is_archived": False})

    # deal products: a quantity
    source_id, line_id, row = _pick(warehouse, "deal_products", "quantity")
    plant("deal_products", "deal_products", source_id, line_id, "quantity", {"quantity": float(row["quantity"]) + 2})

    # leads (v1): the value, and a custom option field (v1 renders option ids as strings)
    source_id, lead_id, row = _pick(warehouse, "leads", "value")
    plant("leads", "leads", source_id, lead_id, "value", {"value": {"amount": row["value"]["amount"] + 10, "currency": "USD"}})
    lead_fields = payload_fields(warehouse, "leads")
    source_id, rated_lead, row = _pick(warehouse, "leads", "custom:Rating", skip={source_id}, where=lambda r: r["custom:Rating"] != "Hot")
    plant("leads", "leads", source_id, rated_lead, "Rating", {"custom_fields": {lead_fields.codes["Rating"]: lead_fields.options["Rating"]["Hot"]}})

    # activities: a participant, and another's owner
    persons = warehouse.idmap("persons")
    source_id, activity_id, row = _pick(warehouse, "activities", "ref:participants:persons")
    wanted = {persons[p] for p in row["ref:participants:persons"] if p in persons}
    stranger = next(p for p in sorted(persons.values()) if p not in wanted)
    plant("activities", "activities", source_id, activity_id, "participants", {"participants": [{"person_id": int(stranger), "primary": True}]})
    source_id, owned, row = _pick(warehouse, "activities", "owner_id", skip={source_id})
    new_owner = next(user for user in sorted(sim.users) if user != row["owner_id"])
    plant("activities", "activities", source_id, owned, "owner_id", {"owner_id": new_owner})

    # notes: the content
    source_id, note_id, row = _pick(warehouse, "notes", "content")
    plant("notes", "notes", source_id, note_id, "content", {"content": row["content"] + " (edited)"})

    # files: the parent, and another's name
    source_id, file_id, row = _pick(warehouse, "files", "file_name")
    parent = next(key for key in ("deal_id", "person_id", "org_id", "lead_id") if store["files"][file_id].get(key) is not None)
    new_parent = ("org_id", int(org_id)) if parent != "org_id" else ("person_id", int(stranger))
    plant("files", "files", source_id, file_id, "parent", {parent: None, new_parent[0]: new_parent[1]})
    source_id, named, row = _pick(warehouse, "files", "file_name", skip={source_id})
    plant("files", "files", source_id, named, "file_name", {"name": "renamed.bin"})

    results, usage = verify_all(settings, warehouse)

    assert reported(warehouse) == planted  # each planted value, and nothing else
    rows = {(row.object, row.field): row for row in warehouse.query("SELECT * FROM validation.field_diff").itertuples()}
    assert (rows["organizations", "Customer Tier"].actual, rows["organizations", "Customer Tier"].rule) == ("Platinum", "option")
    assert rows["leads", "Rating"].actual == "Hot"
    assert (rows["deals", "stage_id"].expected, rows["deals", "stage_id"].actual) == (
        warehouse.read_staged("deals").set_index("source_id").loc[staged_deal, "ref:stage_id:stages"],
        next(key for key, stage in stages.items() if stage == other_stage))  # "<pipeline>/<stage>", not ids
    assert rows["persons", "emails"].actual == '[{"label": "work", "primary": true, "value": "someone.else@example.com"}]'
    assert rows["files", "parent"].actual == f"{new_parent[0].removesuffix('_id')} {new_parent[1]}"
    assert set(usage["requests_by_operation"]) <= READS
    for name, result in results.items():  # the summary counts what the rows say
        assert result.summary["differing"].sum() == sum(1 for key in planted if key[0] == name), name


def repunctuated(phone: str) -> str:
    """The same digits (and leading +), punctuated otherwise: "+44 20 8902 7798" -> "+442-089-027-798"."""
    digits = re.sub(r"\D", "", phone)
    return ("+" if phone.strip().startswith("+") else "") + "-".join(digits[i:i + 3] for i in range(0, len(digits), 3))
