"""Shared fixtures: sandboxes served on free loopback ports, and settings that point at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from migration_pipeline.settings import Settings

if TYPE_CHECKING:
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig


def settings_for(sandbox: Sandbox, home: Path) -> Settings:
    """Settings pointing at `sandbox`, with MIGRATION_HOME and the mappings dir under `home`."""
    environment = {name.lower(): value for name, value in sandbox.environment().items()}
    return Settings(_env_file=None, **environment, migration_home=home / "home", migration_mappings_dir=home / "mappings")  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One sandbox (1,000 records, seed 42) shared by the session: for tests that only read from it."""
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(records=1000, seed=42)) as running:
        yield running


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory of fresh sandboxes for tests that change state; each is stopped after the test."""
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

    started: list[Sandbox] = []

    def make(config: SandboxConfig | None = None, **fields: object) -> Sandbox:
        running = Sandbox(config or SandboxConfig(**fields)).start()  # type: ignore[arg-type]
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def cli_for(settings: Settings) -> Callable[..., str]:
    """`migrate ARGS` in this process with `settings`: returns what it printed, after asserting its exit code."""
    from click.testing import CliRunner

    from migration_pipeline.cli import main

    runner = CliRunner()

    def migrate(*args: str, exit_code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(main, list(args), obj={"settings": settings}, input=input)
        assert result.exit_code == exit_code, (result.output, result.exception)
        return result.output

    return migrate
