"""User-caused failures end with one paragraph that names the setting to fix, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from migration_pipeline.sandbox.runtime import Sandbox


def migrate(args: list[str], environment: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real `migrate` entry point in a child process with exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "migration_pipeline.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_one_paragraph(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode not in (0, 70), result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_unreachable_dynamics_url_names_the_setting(sandbox: Sandbox, tmp_path: Path) -> None:
    environment = sandbox.environment() | {"DYNAMICS_URL": f"http://127.0.0.1:{unused_port()}"}
    environment["DYNAMICS_AUTHORITY_URL"] = sandbox.dynamics_url
    result = migrate(["audit"], environment | {"MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert_one_paragraph(result, "DYNAMICS_URL")


def test_wrong_secret_names_the_setting_and_hides_the_secret(sandbox: Sandbox, tmp_path: Path) -> None:
    wrong = "definitely-not-the-secret-4711"
    environment = sandbox.environment() | {"DYNAMICS_CLIENT_SECRET": wrong, "MIGRATION_HOME": str(tmp_path)}
    result = migrate(["audit"], environment, tmp_path)
    assert_one_paragraph(result, "DYNAMICS_CLIENT_SECRET")
    assert wrong not in result.stderr + result.stdout


def test_missing_settings_are_named(tmp_path: Path) -> None:
    result = migrate(["audit"], {"MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert_one_paragraph(result, "DYNAMICS_URL")


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    result = migrate(["--debug", "audit"], {"MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
