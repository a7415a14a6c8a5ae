"""The running sandbox: synthetic data served by both simulators on loopback ports.

`migrate sandbox`, `migrate demo` and the test suite all start the sandbox through
`Sandbox`, so they agree on the ports, the credentials and the environment variables that
point the tool at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType

from migration_pipeline.sandbox.dataverse.app import DataverseOptions
from migration_pipeline.sandbox.dataverse.app import create_app as create_dataverse_app
from migration_pipeline.sandbox.pipedrive.app import PipedriveOptions
from migration_pipeline.sandbox.pipedrive.app import create_app as create_pipedrive_app
from migration_pipeline.sandbox.serve import LoopbackServer
from migration_pipeline.sandbox.synthetic import SyntheticData, generate

DEFAULT_PORT = 8760


@dataclass
class SandboxConfig:
    """How big the dataset is and how the simulators behave."""

    records: int = 1000
    seed: int = 42
    port: int = 0  # 0: free ports; otherwise Dataverse and Entra on `port`, Pipedrive on `port + 1`
    pipedrive_existing: bool = True
    dataverse: DataverseOptions = field(default_factory=DataverseOptions)
    pipedrive: PipedriveOptions = field(default_factory=PipedriveOptions)


class Sandbox:
    """Both simulators over one synthetic dataset, served on 127.0.0.1 while the sandbox is open."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.data: SyntheticData = generate(
            self.config.records, self.config.seed, pipedrive_existing=self.config.pipedrive_existing
        )
        self.dataverse_app = create_dataverse_app(self.data.dataverse, self.config.dataverse)
        self.pipedrive_app = create_pipedrive_app(self.data.pipedrive, self.config.pipedrive)
        port = self.config.port
        self._dataverse_server = LoopbackServer(self.dataverse_app, port=port)
        self._pipedrive_server = LoopbackServer(self.pipedrive_app, port=port + 1 if port else 0)

    @property
    def dynamics_url(self) -> str:
        return self._dataverse_server.url

    @property
    def pipedrive_url(self) -> str:
        return self._pipedrive_server.url

    def environment(self) -> dict[str, str]:
        """The DESIGN.md settings that point the tool at this sandbox."""
        options = self.config.dataverse
        seed = self.data.pipedrive
        admin_token, admin_id = next(iter(seed.api_tokens.items()))
        admin_email = next(user["email"] for user in seed.users if user["id"] == admin_id)
        return {
            "DYNAMICS_URL": self.dynamics_url,
            "DYNAMICS_AUTHORITY_URL": self.dynamics_url,
            "DYNAMICS_TENANT_ID": options.tenant_id,
            "DYNAMICS_CLIENT_ID": options.client_id,
            "DYNAMICS_CLIENT_SECRET": options.client_secret,
            "PIPEDRIVE_URL": self.pipedrive_url,
            "PIPEDRIVE_API_TOKEN": admin_token,
            # The sandbox's admin user receives the records of owners with no Pipedrive account.
            "PIPEDRIVE_FALLBACK_OWNER_EMAIL": admin_email,
        }

    def start(self) -> Sandbox:
        self._dataverse_server.start()
        try:
            self._pipedrive_server.start()
        except BaseException:
            self._dataverse_server.stop()
            raise
        return self

    def stop(self) -> None:
        self._pipedrive_server.stop()
        self._dataverse_server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
