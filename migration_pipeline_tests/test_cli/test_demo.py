"""`migrate demo`, the README's first command, runs the story against the in-process sandbox and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig


def test_demo_migrates_every_account_and_verifies_clean(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "migration_pipeline.cli", "demo", "--records", "300", "--home", str(home)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    accounts = int(re.search(r"accounts\s+([\d,]+) records", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    # Every account, plus the organizations the rules add (the placeholder for orphan contacts, leads' companies).
    staged = int(re.search(r"staged/organizations: ([\d,]+) staged", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert staged > accounts
    # Each staged organization created, or linked to the one the Pipedrive account already held by that name.
    created, there = (int(n.replace(",", "")) for n in re.search(r"pipedrive/organizations: created (\d[\d,]*\d|\d), already there (\d[\d,]*\d|\d)", out).groups())  # type: ignore[union-attr]
    assert created + there == staged and 0 < there < 10
    for step in ("organizations_relationships", "persons", "products", "deals", "deal_products", "leads", "activities", "notes", "files"):
        assert re.search(rf"pipedrive/{step}: created [1-9]", out), step
    assert re.search(r"pipedrive/deal_archive: .* [1-9][\d,]* updated", out)
    assert f"pipedrive/organizations: nothing new to create ({staged:,} already in Pipedrive)" in out
    assert "check pipedrive/organizations:field_diff: passed (every field matches)" in out
    assert (home / "warehouse.duckdb").exists()
    assert list((home / "reports").glob("migration-*.md"))

    # Secrets: neither the Pipedrive API token nor the Dataverse client secret is in anything the demo wrote or
    # printed (Parquet, DuckDB, journals, reports, mappings), and MIGRATION_HOME is its owner's alone.
    environment = Sandbox(SandboxConfig(records=300)).environment()  # the demo's sandbox: same records, same seed
    secrets = [environment["PIPEDRIVE_API_TOKEN"], environment["DYNAMICS_CLIENT_SECRET"]]
    written = [path for path in home.rglob("*") if path.is_file()]
    assert len(written) > 50 and any(path.suffix == ".jsonl" for path in written) and any(path.suffix == ".duckdb" for path in written)
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
        leaks = [path for path in written if secret.encode() in path.read_bytes()]
        assert not leaks, f"a secret is in {leaks}"
    assert home.stat().st_mode & 0o777 == 0o700
