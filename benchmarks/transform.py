"""How fast the transform rules turn raw Dynamics tables into staged Pipedrive payloads.

Usage: `python benchmarks/transform.py [--records 100000] [--contacts 1000000] [--repeat 3]`.

The sandbox of `--records` business records is served in-process and extracted through the
real extractor (`steps/extract.py`), so the rules read exactly the raw shape a migration
writes. Then two measurements, each the best of `--repeat` runs (the input is built before the
clock starts):

- contacts -> persons: the raw contacts tiled to `--contacts` rows with fresh ids (their
  accounts, emails, phones and planted mistakes repeat), through `transform_persons`. Target:
  at least 100,000 records/s on the project's 2-core machine.
- the full dataset: every rule in load order (`transform_all`) over every extracted table;
  records/s counts the rows of every table the rules account for.

Nothing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.mapping.rules.common import Links, ObjectStage
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline.mapping.rules.run import transform_all
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.settings import Settings
from migration_pipeline.steps.extract import ExtractResult, extract_tables, scope_tables
from migration_pipeline.steps.plan import Plan, load_plan, write_plan
from migration_pipeline.steps.schema import discover_schema, write_schema
from migration_pipeline.steps.transform import organizations_stage, rule_context
from migration_pipeline.warehouse.catalog import Warehouse

REFERENCE_TABLES = {"systemusers", "teams", "transactioncurrencies", "pricelevels", "processstages", "workflows", "organizations",
                    "schema_entities", "schema_attributes", "schema_relationships"}


def extract_sandbox(records: int, home: Path) -> tuple[dict[str, pd.DataFrame], Plan]:
    """The sandbox's raw tables, as the extractor writes them, and the plan `migrate plan` proposes for them."""
    with Sandbox(SandboxConfig(records=records, seed=42)) as sandbox:
        environment = {name.lower(): value for name, value in sandbox.environment().items()}
        settings = Settings(_env_file=None, **environment, migration_home=home, migration_mappings_dir=home / "mappings")  # type: ignore[call-arg]
        warehouse = Warehouse(home)
        with DataverseClient.from_settings(settings) as client:
            write_schema(warehouse, discover_schema(client))
            results = [r for r in extract_tables(client, warehouse, scope_tables(home)) if isinstance(r, ExtractResult)]
        raw = {result.entity_set: warehouse.read_raw(result.entity_set) for result in results}
        write_plan(warehouse, settings.migration_mappings_dir, sandbox.data.pipedrive.users, settings.pipedrive_fallback_owner_email)
    return raw, load_plan(settings.migration_mappings_dir)


def tiled_contacts(contacts: pd.DataFrame, rows: int) -> pd.DataFrame:
    """`contacts` repeated to `rows` rows, each with a fresh id, in the raw column shape."""
    repeats = -(-rows // len(contacts))
    tiled = pd.concat([contacts] * repeats, ignore_index=True).iloc[:rows].copy()
    tiled["contactid"] = pd.Series([str(uuid.UUID(int=int(i) + 1)) for i in np.arange(rows)], dtype=contacts["contactid"].dtype)
    return tiled


def best_of(repeat: int, run: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="sandbox size (business records)")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts for the persons measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="transform-bench-") as directory:
        started = time.perf_counter()
        raw, plan = extract_sandbox(args.records, Path(directory) / "home")
        print(f"sandbox of {args.records:,} records extracted and planned in {time.perf_counter() - started:.1f} s")
    context, custom_entities = rule_context(plan, raw), plan.custom_entities.entities

    def stage_all() -> dict[str, ObjectStage]:
        return transform_all(raw, context, organizations_stage(plan, raw), custom_entities)

    links = Links()
    links.add("account", organizations_stage(plan, raw))
    contacts = tiled_contacts(raw["contacts"], args.contacts)
    seconds = best_of(args.repeat, lambda: transform_persons(contacts, context, links))
    print(f"contacts -> persons: {len(contacts):,} records in {seconds:.2f} s = {len(contacts) / seconds:,.0f} records/s (target 100,000)")
    del contacts

    source_rows = sum(len(frame) for name, frame in raw.items() if name not in REFERENCE_TABLES)
    seconds = best_of(args.repeat, stage_all)
    print(f"full dataset ({args.records:,}-record sandbox, {source_rows:,} source rows in {len(raw) - len(REFERENCE_TABLES & set(raw))} tables): "
          f"{seconds:.2f} s = {source_rows / seconds:,.0f} records/s")
    stages = stage_all()
    for name, stage in stages.items():
        print(f"  {name:<16} staged {len(stage.staged):>9,}  merged {len(stage.merged):>9,}  rejects {len(stage.rejects):>7,}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
