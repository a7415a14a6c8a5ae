"""Schema discovery and the audit: `dynamics/schema` scopes the extract, `audit/scope` reads what it extracted.

`dynamics/schema` belongs to the extract group (every extract job discovers first); the
`audit` job runs discovery, the extract and the audit, which is what `migrate audit` launches.
"""

from pathlib import Path

import dagster as dg

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.dynamics.assets import SCHEMA_KEY, table_key
from migration_pipeline.defs.resources import DynamicsResource, WarehouseResource
from migration_pipeline.steps.audit import DEFAULT_PLAN, DEFAULT_SEATS, audit_scope
from migration_pipeline.steps.extract import scope_tables
from migration_pipeline.steps.schema import discover_schema, write_schema

SCOPE_KEY = dg.AssetKey(["audit", "scope"])


@dg.asset(
    key=SCHEMA_KEY,
    group_name="extract",
    kinds={"dynamics", "parquet"},
    owners=OWNERS,
    description="Tables, columns (custom ones flagged, with types, lengths and option labels) and relationships of "
    "the source, from Dataverse metadata: `raw.schema_entities`, `raw.schema_attributes`, `raw.schema_relationships`. "
    "It decides which tables the extract reads; its row count is the tables found.",
)
def schema(dynamics: DynamicsResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with dynamics.client() as client:
        found = discover_schema(client)
    write_schema(warehouse.warehouse(), found)
    entities, attributes = found.entities, found.attributes
    unreadable = entities.loc[~entities["readable"].fillna(False).astype(bool), "logical_name"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(entities),
            "entities": len(entities),
            "custom_entities": int(entities["is_custom_entity"].fillna(False).sum()),
            "attributes": len(attributes),
            "custom_attributes": int(attributes["is_custom_attribute"].fillna(False).sum()),
            "relationships": len(found.relationships),
            "not_readable": ", ".join(unreadable) or "none",
        }
    )


class AuditConfig(dg.Config):
    """The Pipedrive plan and seat count the token budget and calendar time are estimated for."""

    plan: str = DEFAULT_PLAN
    seats: int = DEFAULT_SEATS


def audit_asset(extract_keys: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """`audit/scope`, downstream of the schema and of every extracted table in `extract_keys`."""

    @dg.asset(
        key=SCOPE_KEY,
        deps=[SCHEMA_KEY, *extract_keys],
        group_name="audit",
        kinds={"duckdb", "markdown"},
        owners=OWNERS,
        description="The scope report (reports/scope.md) and `audit.scope`: counts, custom tables and fields, N:N "
        "relationships, currencies, owners, risks, what to rebuild by hand, and the Pipedrive token cost.",
    )
    def scope(config: AuditConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
        result = audit_scope(warehouse.warehouse(), plan=config.plan, seats=config.seats)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(result.findings),
                "findings": dg.MetadataValue.md(result.summary.to_markdown(index=False)),
                "report": dg.MetadataValue.path(str(result.report)),
                "pipedrive_tokens": result.estimate.tokens,
                "calendar_days": result.estimate.calendar_days,
                "estimate": result.estimate.describe(),
            }
        )

    return scope


AUDIT_JOB = dg.define_asset_job(
    "audit",
    selection=dg.AssetSelection.groups("extract", "audit"),
    description="Discover the schema, extract every table in scope and write the scope report (what `migrate audit` runs).",
    owners=OWNERS,
)


def build_defs(home: Path) -> dg.Definitions:
    """The schema and audit assets for the environment whose data lives under `home` (the extract's scope)."""
    return dg.Definitions(assets=[schema, audit_asset([table_key(table) for table in scope_tables(home)])], jobs=[AUDIT_JOB])
