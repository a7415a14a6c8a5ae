"""Pipedrive API client: v2 (v1 where no v2 exists), token-budget pacing, custom fields, files."""

from migration_pipeline.pipedrive.client import PipedriveClient, Usage, run_sync, version_for
from migration_pipeline.pipedrive.errors import (
    DailyBudgetExhausted,
    PipedriveApiError,
    PlanLimitReached,
    TrafficBlocked,
    WriteInDoubt,
)
from migration_pipeline.pipedrive.fields import CustomFieldRegistry

__all__ = [
    "CustomFieldRegistry",
    "DailyBudgetExhausted",
    "PipedriveApiError",
    "PipedriveClient",
    "PlanLimitReached",
    "TrafficBlocked",
    "Usage",
    "WriteInDoubt",
    "run_sync",
    "version_for",
]
