"""The `rollback` job: undo the migration from the audit trail (`steps/rollback.py`)."""

from migration_pipeline.defs.rollback.jobs import defs

__all__ = ["defs"]
