"""Audit: what is there to move, before anything moves: tables, counts, custom fields.

Written as `reports/scope.md` and `audit.scope` (one row per finding: entity, kind, subject,
count, detail) so analysts can query it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.steps.objects import OBJECTS, REFERENCE_TABLES
from migration_pipeline.warehouse.catalog import Warehouse

SCOPE_COLUMNS = ["entity_set", "kind", "subject", "count", "detail"]
SCOPE_TABLE = "audit.scope"


def audit_scope(client: DataverseClient, warehouse: Warehouse) -> tuple[pd.DataFrame, Path]:
    findings: list[dict[str, object]] = []
    tables = [(item.logical_name, item.entity_set) for item in OBJECTS] + list(REFERENCE_TABLES)
    for logical_name, entity_set in tables:
        findings.append(dict(entity_set=entity_set, kind="records", subject=logical_name, count=client.count(entity_set), detail=""))
        for attribute in client.attributes(logical_name):
            if attribute.is_custom_attribute and attribute.attribute_of is None:
                findings.append(
                    dict(entity_set=entity_set, kind="custom_field", subject=attribute.logical_name, count=1,
                         detail=attribute.attribute_type or "")
                )
    scope = pd.DataFrame(findings, columns=SCOPE_COLUMNS)
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCOPE_TABLE} (entity_set VARCHAR, kind VARCHAR, subject VARCHAR, count BIGINT, detail VARCHAR)")
    warehouse.replace_rows(SCOPE_TABLE, scope)
    records = scope[scope["kind"] == "records"][["entity_set", "count"]]
    custom = scope[scope["kind"] == "custom_field"][["entity_set", "subject", "detail"]]
    text = "\n\n".join(
        [
            f"# Scope report\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
            "## Records per table\n\n" + records.to_markdown(index=False),
            "## Custom fields\n\n" + (custom.to_markdown(index=False) if len(custom) else "None."),
        ]
    )
    path = warehouse.reports_dir / "scope.md"
    path.write_text(text + "\n", encoding="utf-8")
    return scope, path
