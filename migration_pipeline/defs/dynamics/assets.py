"""Extract assets: one `dynamics/<entity_set>` per Dataverse table, written to raw Parquet.

The tables are one multi-asset so that they extract concurrently in one process, sharing one
client (one token, one pause gate that a 429 closes for every worker), while each table is
still its own asset with its own row count. Any subset can be materialized.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.resources import DynamicsResource, WarehouseResource
from migration_pipeline.steps.extract import ExtractFailure, ExtractSkipped, TableRef, extract_tables, scope_tables

SCHEMA_KEY = dg.AssetKey(["dynamics", "schema"])


def table_key(table: TableRef) -> dg.AssetKey:
    return dg.AssetKey(["dynamics", table.entity_set])


def extract_assets(tables: Sequence[TableRef]) -> dg.AssetsDefinition:
    """One multi-asset over `tables`, each downstream of the schema discovery that scopes it."""
    by_key = {table_key(table): table for table in tables}
    specs = [
        dg.AssetSpec(
            key,
            deps=[SCHEMA_KEY],
            group_name="extract",
            kinds={"dynamics", "parquet"},
            owners=OWNERS,
            skippable=True,
            description=f"Every {table.logical_name} row from the Dataverse Web API, as raw Parquet "
            f"(`raw.{table.entity_set}` in DuckDB)"
            + ("; read as a change-tracking sync, so delta pickups start from here." if table.track_changes else "."),
        )
        for key, table in by_key.items()
    ]

    @dg.multi_asset(specs=specs, name="extract_dynamics", can_subset=True)
    def _extract(
        context: dg.AssetExecutionContext, dynamics: DynamicsResource, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        selected = [by_key[key] for key in by_key if key in context.selected_asset_keys]
        home = warehouse.warehouse()
        if len(selected) == len(by_key):
            # Schema discovery earlier in this run may have found tables these definitions were built
            # without (a fresh MIGRATION_HOME): extract them too, so nothing downstream misses them.
            unknown = [table for table in scope_tables(home.home) if table_key(table) not in by_key]
            if unknown:
                context.log.warning(
                    f"extracting {', '.join(t.entity_set for t in unknown)} as well: found by schema discovery after these "
                    "definitions loaded; reload the code location to see them as assets"
                )
            selected += unknown
        failures: list[ExtractFailure] = []
        with dynamics.client() as client:
            for outcome in extract_tables(client, home, selected):
                if isinstance(outcome, ExtractFailure):
                    context.log.error(f"{outcome.entity_set}: {outcome.error}")
                    failures.append(outcome)
                    continue
                key = dg.AssetKey(["dynamics", outcome.entity_set])
                if key not in by_key:
                    continue
                if isinstance(outcome, ExtractSkipped):  # recorded, so that the audit downstream still runs
                    yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": 0, "not_readable": outcome.reason})
                    continue
                context.log.info(f"{outcome.entity_set}: {outcome.rows:,} rows in {outcome.pages} pages, {outcome.seconds:.1f} s")
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "dagster/row_count": outcome.rows,
                        "columns": outcome.columns,
                        "pages": outcome.pages,
                        "duration_s": round(outcome.seconds, 2),
                        "change_tracking": outcome.delta_link is not None,
                    },
                )
        if failures:  # every table that could be extracted was; each failure is logged above
            raise failures[0].error

    return _extract


def build_defs(home: Path) -> dg.Definitions:
    """The extract assets for the environment whose data lives under `home`.

    After schema discovery has run once, custom entities are assets of their own too (reload
    the code location to see new ones).
    """
    return dg.Definitions(assets=[extract_assets(scope_tables(home))])
