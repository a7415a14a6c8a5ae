"""Shared fixtures: the sandbox served on free loopback ports, and settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migration_pipeline.settings import Settings


@pytest.fixture(scope="session")
def sandbox() -> Iterator["Sandbox"]:  # noqa: F821 - imported lazily so pure tests never build a sandbox
    """One sandbox (1,000 records, seed 42) for the whole session; tests must not leave it changed."""
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(records=1000, seed=42)) as running:
        yield running


@pytest.fixture
def settings(sandbox: "Sandbox", tmp_path: Path) -> Settings:  # noqa: F821
    """Settings pointing at the shared sandbox, with a fresh MIGRATION_HOME and mappings dir per test."""
    environment = {name.lower(): value for name, value in sandbox.environment().items()}
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        **environment,
        migration_home=tmp_path / "home",
        migration_mappings_dir=tmp_path / "mappings",
    )
