"""Dataverse Web API client: auth, paging, throttling, metadata, change tracking."""

from migration_pipeline.dynamics.client import ClientStats, DataverseClient
from migration_pipeline.dynamics.errors import ChangeTrackingExpired
from migration_pipeline.dynamics.models import AttributeDefinition, EntityDefinition, OptionMetadata, Page, is_deleted
from migration_pipeline.dynamics.throttle import PauseGate, shared_gate

__all__ = [
    "AttributeDefinition",
    "ChangeTrackingExpired",
    "ClientStats",
    "DataverseClient",
    "EntityDefinition",
    "OptionMetadata",
    "Page",
    "PauseGate",
    "is_deleted",
    "shared_gate",
]
