"""User-caused failures end with one paragraph that says what happened and what to do, the error's own exit code, no traceback.

Every test runs the real `migrate` entry point in a child process against the simulators on
127.0.0.1 (real sockets, no patched client), one failure per test:

| failure                                               | command            | exit |
|-------------------------------------------------------|--------------------|------|
| missing setting (Dynamics, Pipedrive)                 | audit, plan        | 2    |
| malformed URL, value outside the choices              | audit              | 2    |
| wrong client secret, wrong API token                  | audit, plan        | 3    |
| DYNAMICS_URL of no environment (AADSTS70011)          | audit              | 3    |
| Dataverse, its token authority, Pipedrive unreachable | audit, plan        | 4    |
| missing read privilege in Dataverse                   | audit, plan        | 5    |
| Pipedrive plan's custom-field cap                     | run (provisioning) | 5    |
| Pipedrive daily token budget spent                    | run                | 6    |
| plan not confirmed (test_gate.py: edited after)       | run                | 7    |
| malformed mapping file (YAML, unknown key)            | confirm            | 8    |

The sandbox is shared by the module (100 records); a test that changes it (a revoked privilege,
a plan cap, the budget) puts it back in `finally`. `migrate plan` runs once; the tests that
need a plan copy its MIGRATION_HOME and mappings dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from migration_pipeline.errors import (
    AuthenticationError,
    BudgetExhausted,
    ConfigurationError,
    MappingError,
    PermissionDenied,
    PlanNotConfirmed,
    ServiceUnavailable,
)
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

RECORDS, SEED = 100, 42


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


def assert_one_paragraph(result: subprocess.CompletedProcess[str], exit_code: int, *fragments: str) -> str:
    """The command failed with `exit_code` and ended with one `Error: <message> <hint>` paragraph holding `fragments`.

    Progress lines may come before it on stderr; the error paragraph is the last thing printed.
    Returns the paragraph.
    """
    assert result.returncode == exit_code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    assert "This is a bug in migration-pipeline" not in result.stderr
    assert "Warning" not in result.stderr, result.stderr[-3000:]  # no library noise around the paragraph
    lines = result.stderr.strip().splitlines()
    errors = [index for index, line in enumerate(lines) if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0] == len(lines) - 1, result.stderr[-3000:]  # one line: one paragraph
    message = lines[-1]
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret and secret not in result.stdout + result.stderr


def environment_for(sandbox: Sandbox, root: Path) -> dict[str, str]:
    """The settings pointing at `sandbox`, with MIGRATION_HOME and the mappings dir under `root`."""
    return sandbox.environment() | {"MIGRATION_HOME": str(root / "home"), "MIGRATION_MAPPINGS_DIR": str(root / "mappings")}


@pytest.fixture(scope="module")
def served() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(records=RECORDS, seed=SEED)) as running:
        yield running


@pytest.fixture(scope="module")
def planned(served: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root whose MIGRATION_HOME and mappings dir hold an extract and the proposed (unconfirmed) plan."""
    root = tmp_path_factory.mktemp("planned")
    result = migrate(["plan"], environment_for(served, root), root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def copy_of(planned: Path, tmp_path: Path) -> Path:
    for name in ("home", "mappings"):
        shutil.copytree(planned / name, tmp_path / name)
    return tmp_path


def pipedrive_control(sandbox: Sandbox, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """One of the Pipedrive simulator's `/_sandbox/` controls, over HTTP."""
    response = httpx.request("GET" if body is None else "POST", f"{sandbox.pipedrive_url}/_sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


# --- (1) settings: missing, and present but invalid ------------------------------------------


def test_missing_settings_are_named(tmp_path: Path) -> None:
    result = migrate(["audit"], {"MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert_one_paragraph(result, ConfigurationError.exit_code, "Missing settings", "DYNAMICS_URL", ".env")


def test_a_missing_pipedrive_token_is_named(served: Sandbox, tmp_path: Path) -> None:
    environment = environment_for(served, tmp_path)
    del environment["PIPEDRIVE_API_TOKEN"]
    result = migrate(["plan"], environment, tmp_path)
    assert_one_paragraph(result, ConfigurationError.exit_code, "Missing setting: PIPEDRIVE_API_TOKEN", "Set it in the environment")


def test_a_url_without_scheme_is_named(tmp_path: Path) -> None:
    result = migrate(["audit"], {"DYNAMICS_URL": "contoso.crm.dynamics.com", "MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert_one_paragraph(result, ConfigurationError.exit_code, "Invalid settings", "DYNAMICS_URL", "must start with https://",
                         "https://contoso.crm.dynamics.com")


def test_a_url_with_a_port_that_is_not_a_number_is_named(served: Sandbox, tmp_path: Path) -> None:
    environment = environment_for(served, tmp_path) | {"PIPEDRIVE_URL": "https://acme.pipedrive.com:44x3"}
    result = migrate(["audit"], environment, tmp_path)
    message = assert_one_paragraph(result, ConfigurationError.exit_code, "Invalid settings", "PIPEDRIVE_URL", "is not a URL",
                                   "Fix the named variables")
    assert "Value error" not in message  # pydantic's wording stays out of the sentence
    assert_no_secret(result, served.config.dataverse.client_secret, environment["PIPEDRIVE_API_TOKEN"])


def test_a_url_with_a_space_is_refused_before_any_request(served: Sandbox, tmp_path: Path) -> None:
    environment = environment_for(served, tmp_path) | {"DYNAMICS_AUTHORITY_URL": "https://login.microsoft online.com"}
    result = migrate(["audit"], environment, tmp_path)
    assert_one_paragraph(result, ConfigurationError.exit_code, "DYNAMICS_AUTHORITY_URL", "contains a space")


def test_a_value_outside_the_choices_is_named_with_the_choices(tmp_path: Path) -> None:
    result = migrate(["audit"], {"MIGRATION_MATCH_PERSONS": "phone", "MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert_one_paragraph(result, ConfigurationError.exit_code, "MIGRATION_MATCH_PERSONS", "'email' or 'none'")


# --- (2) credentials ---------------------------------------------------------------------------


def test_wrong_secret_names_the_setting_and_hides_the_secret(served: Sandbox, tmp_path: Path) -> None:
    wrong = "definitely-not-the-secret-4711"
    environment = environment_for(served, tmp_path) | {"DYNAMICS_CLIENT_SECRET": wrong}
    result = migrate(["audit"], environment, tmp_path)
    assert_one_paragraph(result, AuthenticationError.exit_code, "DYNAMICS_CLIENT_SECRET", "Certificates & secrets")
    assert_no_secret(result, wrong, served.config.dataverse.client_secret, environment["PIPEDRIVE_API_TOKEN"])


def test_wrong_pipedrive_token_names_the_setting_and_hides_the_token(served: Sandbox, tmp_path: Path) -> None:
    wrong = "0123456789abcdef-not-a-pipedrive-token"
    environment = environment_for(served, tmp_path) | {"PIPEDRIVE_API_TOKEN": wrong}
    result = migrate(["plan"], environment, tmp_path)
    assert_one_paragraph(result, AuthenticationError.exit_code, "Pipedrive rejected the API token", "PIPEDRIVE_API_TOKEN",
                         "Personal preferences > API")
    assert_no_secret(result, wrong, served.config.dataverse.client_secret, served.environment()["PIPEDRIVE_API_TOKEN"])


# --- (3) unreachable hosts ---------------------------------------------------------------------


class _TokenOnly(BaseHTTPRequestHandler):
    """A token authority that grants every client-credentials request: Entra answering while Dataverse does not."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"token_type": "Bearer", "expires_in": 3600, "access_token": "stub-token"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture(scope="module")
def token_authority() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_unreachable_dynamics_url_names_the_setting(served: Sandbox, token_authority: str, tmp_path: Path) -> None:
    """Signed in, but nothing answers at DYNAMICS_URL (a firewall, a wrong host): the network, not the credentials."""
    address = f"http://127.0.0.1:{unused_port()}"
    environment = environment_for(served, tmp_path) | {"DYNAMICS_URL": address, "DYNAMICS_AUTHORITY_URL": token_authority}
    result = migrate(["audit"], environment, tmp_path)
    assert_one_paragraph(result, ServiceUnavailable.exit_code, f"Could not reach Dataverse at DYNAMICS_URL={address}",
                         "Check DYNAMICS_URL", "reachable from this machine")


def test_unreachable_token_authority_names_the_setting(served: Sandbox, tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{unused_port()}"
    result = migrate(["audit"], environment_for(served, tmp_path) | {"DYNAMICS_AUTHORITY_URL": address}, tmp_path)
    assert_one_paragraph(result, ServiceUnavailable.exit_code, f"Could not reach the token authority at DYNAMICS_AUTHORITY_URL={address}",
                         "login.microsoftonline.com")


def test_a_dynamics_url_of_no_environment_is_refused_by_the_authority(served: Sandbox, tmp_path: Path) -> None:
    """Entra refuses the token's scope (AADSTS70011) for a URL that is not the environment: the hint is DYNAMICS_URL."""
    environment = environment_for(served, tmp_path) | {"DYNAMICS_URL": f"http://127.0.0.1:{unused_port()}"}
    result = migrate(["audit"], environment, tmp_path)
    assert_one_paragraph(result, AuthenticationError.exit_code, "AADSTS70011", "Fix DYNAMICS_URL", "Developer resources")


def test_unreachable_pipedrive_url_names_the_setting(served: Sandbox, tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{unused_port()}"
    result = migrate(["plan"], environment_for(served, tmp_path) | {"PIPEDRIVE_URL": address}, tmp_path)
    assert_one_paragraph(result, ServiceUnavailable.exit_code, f"Cannot reach Pipedrive at {address}", "PIPEDRIVE_URL")
    assert_no_secret(result, served.config.dataverse.client_secret, served.environment()["PIPEDRIVE_API_TOKEN"])


# --- (4) a privilege the Dataverse application user lacks --------------------------------------


def test_a_missing_read_privilege_names_the_privilege_and_the_role_to_grant(served: Sandbox, tmp_path: Path) -> None:
    """The audit stops on the table; so does `migrate plan` after it, instead of migrating without the table."""
    privileges = f"{served.dynamics_url}/_sandbox/privileges/accounts"
    httpx.put(privileges, json={"read": False}).raise_for_status()
    try:
        environment = environment_for(served, tmp_path)
        expected = ("prvReadAccount", "'account'", "security role", "Application users")
        audited = migrate(["audit"], environment, tmp_path)
        assert_one_paragraph(audited, PermissionDenied.exit_code, *expected)
        planned = migrate(["plan"], environment, tmp_path)  # the schema now says `account` is not readable
        assert_one_paragraph(planned, PermissionDenied.exit_code, *expected)
        assert not (tmp_path / "mappings" / "organizations.yaml").exists()
    finally:
        httpx.put(privileges, json={"read": True}).raise_for_status()


# --- (5) Pipedrive plan caps -------------------------------------------------------------------


def test_the_custom_field_cap_of_the_plan_says_what_to_do(served: Sandbox, planned: Path, tmp_path: Path) -> None:
    root = copy_of(planned, tmp_path)
    environment = environment_for(served, root)
    assert migrate(["confirm", "--yes"], environment, root).returncode == 0
    cap = pipedrive_control(served, "plan", {})["custom_field_cap"]
    pipedrive_control(served, "plan", {"custom_field_cap": pipedrive_control(served, "usage")["custom_fields"]})
    try:
        result = migrate(["run"], environment, root)
    finally:
        pipedrive_control(served, "plan", {"custom_field_cap": cap})
    assert_one_paragraph(result, PermissionDenied.exit_code, "feature_capping_custom_fields_limit", "custom fields",
                         "Data fields", "not_migrated", "migrate run")
    assert_no_secret(result, served.config.dataverse.client_secret, environment["PIPEDRIVE_API_TOKEN"])


# --- (6) the daily token budget ----------------------------------------------------------------


def test_a_spent_daily_budget_names_the_reset_and_how_to_resume(served: Sandbox, planned: Path, tmp_path: Path) -> None:
    root = copy_of(planned, tmp_path)
    environment = environment_for(served, root)
    assert migrate(["confirm", "--yes"], environment, root).returncode == 0
    budget = pipedrive_control(served, "plan", {})["daily_token_budget"]
    pipedrive_control(served, "plan", {"daily_token_budget": pipedrive_control(served, "usage")["tokens_used"]})
    try:
        result = migrate(["run"], environment, root)
    finally:
        pipedrive_control(served, "plan", {"daily_token_budget": budget})
        pipedrive_control(served, "budget/reset", {})
    assert_one_paragraph(result, BudgetExhausted.exit_code, "daily API token budget", "refills at", "UTC",
                         "run `migrate run` after the reset")
    assert_no_secret(result, served.config.dataverse.client_secret, environment["PIPEDRIVE_API_TOKEN"])


# --- (7) a malformed mapping file --------------------------------------------------------------


def test_a_yaml_syntax_error_names_the_file_and_line(served: Sandbox, planned: Path, tmp_path: Path) -> None:
    root = copy_of(planned, tmp_path)
    mapping = root / "mappings" / "persons.yaml"
    lines = mapping.read_text().splitlines()
    mapping.write_text("\n".join([*lines, "fields: [oops"]) + "\n")
    result = migrate(["confirm", "--yes"], environment_for(served, root), root)
    message = assert_one_paragraph(result, MappingError.exit_code, "persons.yaml", "not valid YAML", "Fix the file's syntax")
    assert re.search(r"persons\.yaml line \d+:", message), message


def test_an_unknown_field_in_a_mapping_names_the_entry(served: Sandbox, planned: Path, tmp_path: Path) -> None:
    root = copy_of(planned, tmp_path)
    mapping = root / "mappings" / "organizations.yaml"
    text = mapping.read_text()
    assert "  transform: text\n" in text
    mapping.write_text(text.replace("  transform: text\n", "  transfrom: text\n", 1))
    result = migrate(["confirm", "--yes"], environment_for(served, root), root)
    assert_one_paragraph(result, MappingError.exit_code, "organizations.yaml", "transfrom", "(entry for 'name')",
                         "Extra inputs are not permitted", "Fix the named entries")


# --- (8) an unconfirmed plan (test_gate.py covers an edit after confirming) ---------------------


def test_run_before_confirm_says_to_confirm(served: Sandbox, planned: Path, tmp_path: Path) -> None:
    root = copy_of(planned, tmp_path)
    before = pipedrive_control(served, "usage")["requests_served"]
    result = migrate(["run"], environment_for(served, root), root)
    assert_one_paragraph(result, PlanNotConfirmed.exit_code, "has not been confirmed", "migrate confirm")
    assert pipedrive_control(served, "usage")["requests_served"] == before  # refused before touching Pipedrive


# --- --debug -----------------------------------------------------------------------------------


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    result = migrate(["--debug", "audit"], {"MIGRATION_HOME": str(tmp_path)}, tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
