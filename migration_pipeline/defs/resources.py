"""One resource per outside system, each built from `settings.py`.

A field left unset takes the setting's value (environment or `.env`), so the deployed
definitions configure nothing; tests point the same resources at the sandbox by setting
fields. Resources hand out configured clients and hold no business logic.
"""


from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import dagster as dg

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.settings import Settings, load_settings
from migration_pipeline.warehouse.catalog import Warehouse


class _SettingsResource(dg.ConfigurableResource):
    """Fields named like settings without their prefix; unset ones fall back to the environment."""

    _prefix: str = ""

    def settings(self) -> Settings:
        overrides = {f"{self._prefix}{name}": value for name, value in self.model_dump().items() if value is not None}
        return load_settings(**overrides)


class DynamicsResource(_SettingsResource):
    """The Dataverse Web API of the source environment (DYNAMICS_* settings)."""

    _prefix = "dynamics_"
    url: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    authority_url: str | None = None

    @contextmanager
    def client(self) -> Iterator[DataverseClient]:
        with DataverseClient.from_settings(self.settings()) as client:
            yield client


class PipedriveResource(_SettingsResource):
    """The Pipedrive company account being migrated into (PIPEDRIVE_* settings)."""

    _prefix = "pipedrive_"
    url: str | None = None
    api_token: str | None = None
    fallback_owner_email: str | None = None

    @asynccontextmanager
    async def client(self) -> AsyncIterator[PipedriveClient]:
        async with PipedriveClient.from_settings(self.settings()) as client:
            yield client


class WarehouseResource(_SettingsResource):
    """MIGRATION_HOME (Parquet, DuckDB, journals, reports) and the mapping workbook."""

    _prefix = "migration_"
    home: str | None = None
    mappings_dir: str | None = None

    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings().migration_home)

    @property
    def mappings_path(self) -> Path:
        return self.settings().migration_mappings_dir



def resources_from(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The three resources, from the environment (no argument) or pinned to explicit settings (the CLI's demo, tests)."""
    if settings is None:
        return {"dynamics": DynamicsResource(), "pipedrive": PipedriveResource(), "warehouse": WarehouseResource()}

    def secret(value: object) -> str | None:
        return None if value is None else value.get_secret_value()  # type: ignore[attr-defined]

    return {
        "dynamics": DynamicsResource(
            url=settings.dynamics_url,
            tenant_id=settings.dynamics_tenant_id,
            client_id=settings.dynamics_client_id,
            client_secret=secret(settings.dynamics_client_secret),
            authority_url=settings.dynamics_authority_url,
        ),
        "pipedrive": PipedriveResource(
            url=settings.pipedrive_url,
            api_token=secret(settings.pipedrive_api_token),
            fallback_owner_email=settings.pipedrive_fallback_owner_email,
        ),
        "warehouse": WarehouseResource(home=str(settings.migration_home), mappings_dir=str(settings.migration_mappings_dir)),
    }
