"""`migrate demo`, the README's first command, runs the whole story against the in-process sandbox and exits 0:
audit, plan, confirm, sample, verify, run, verify, a delta after changes in Dynamics, rollback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig


def test_demo_tells_the_whole_story_and_leaves_pipedrive_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "migration_pipeline.cli", "demo", "--records", "300", "--home", str(home)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # The whole story, step by step, each in a few lines.
    titles = re.findall(r"^== (\d)/9 (\w+)", out, flags=re.MULTILINE)
    assert [title for _, title in titles] == ["Audit", "Plan", "Confirm", "Sample", "Verify", "Run", "Verify", "Cutover", "Rollback"]
    steps = re.split(r"^== \d/9 ", out, flags=re.MULTILINE)[1:]
    assert all(len(step.strip().splitlines()) <= 12 for step in steps), [len(step.splitlines()) for step in steps]
    audit, plan, confirm, sample, verify_sample, run, verify_all, cutover, rollback = steps
    assert re.search(r"\d+ tables, [\d,]+ records", audit) and "rebuild in Pipedrive, not migrated: Workflow" in audit
    assert "reports/scope.md" in audit and "wrote the plan in" in plan and "confirmed by" in confirm
    # The sample covers every coverage key and creates records of every object; its verify is clean with the rest left.
    covered = re.search(r"showing (\d+) of (\d+) coverage keys", sample)
    assert covered and covered.group(1) == covered.group(2), sample
    for name in ("organizations", "organizations relationships", "persons", "products", "deals", "deal products", "leads",
                 "activities", "notes", "files"):
        words = r"\s+".join(name.split())  # the line is wrapped: any space may be a line break
        assert re.search(rf"[(,]\s*{words}\s+[1-9]", sample), name
    assert "checks: 22 passed" in sample and "checks: 22 passed" in run and "FAILED" not in out
    assert re.search(r"0 values differing, 0 missing; every count adds up \([\d,]+ records left to load\)", verify_sample)
    assert re.search(r"0 values differing, 0 missing; every count adds up\n", verify_all)
    assert re.search(r"Pipedrive: created [1-9]", run) and "diff-" in verify_all and "migration-" in run
    # The cutover: what was changed in Dynamics reaches Pipedrive (the new account and its contact created, the renamed
    # account, moved deal and edited task updated in place, the deleted note deleted), and the diff stays clean.
    assert cutover.count("in Dynamics:") == 5 and "dynamics/changes: 5 changed, 1 deleted" in cutover
    assert re.search(r"created 2 \(organizations 1,\s+persons 1\)", cutover) and re.search(r"1\s+deleted", cutover)
    updated = int(re.search(r";\s+(\d+)\s+updated", cutover).group(1))  # type: ignore[union-attr]
    assert 3 <= updated <= 6, cutover  # the three records changed (the deal's new stage may move its probability too)
    assert "Pipedrive now holds" in rollback and "the same as before the migration" in rollback
    assert (home / "warehouse.duckdb").exists()
    assert list((home / "reports").glob("migration-*.md")) and list((home / "reports").glob("diff-*.html"))

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
