"""The migration report: what moved, what was rejected and why, and the diff, in Markdown people read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.warehouse.catalog import Warehouse


def object_counts(warehouse: Warehouse) -> pd.DataFrame:
    """Per object: source rows, staged, rejected records, loaded (in the ID map), and fields differing."""
    rows = []
    for item in OBJECTS:
        source = len(warehouse.read_raw(item.entity_set, columns=[])) if warehouse.raw_path(item.entity_set).exists() else 0
        staged = len(warehouse.read_staged(item.name)) if warehouse.staged_path(item.name).exists() else 0
        loaded = len(warehouse.idmap(item.name))
        rejected = warehouse.query(
            "SELECT count(DISTINCT source_id) AS n FROM staged.rejects WHERE object = ? AND rule = 'required'", [item.name]
        ).iloc[0, 0]
        differing = warehouse.query("SELECT count(*) AS n FROM validation.field_diff WHERE object = ?", [item.name]).iloc[0, 0]
        rows.append(dict(object=item.name, source=source, staged=staged, rejected=int(rejected), loaded=loaded, differences=int(differing)))
    return pd.DataFrame(rows)


def write_migration_report(warehouse: Warehouse, run_id: str, at: datetime) -> Path:
    counts = object_counts(warehouse)
    rejects = warehouse.query(
        "SELECT object, field, reason, count(*) AS records FROM staged.rejects GROUP BY ALL ORDER BY object, records DESC"
    )
    summary = warehouse.query("SELECT object, field, compared, equal, differing, missing FROM validation.summary ORDER BY object, field")
    text = "\n\n".join(
        [
            f"# Migration report\n\nRun `{run_id}`, {at:%Y-%m-%d %H:%M} UTC.",
            "## Records per object\n\n" + counts.to_markdown(index=False),
            "## Rejected values\n\n" + (rejects.to_markdown(index=False) if len(rejects) else "None."),
            "## Field-level diff\n\n" + (summary.to_markdown(index=False) if len(summary) else "Not verified yet."),
        ]
    )
    path = warehouse.reports_dir / f"migration-{run_id}.md"
    path.write_text(text + "\n", encoding="utf-8")
    return path
