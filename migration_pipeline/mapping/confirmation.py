"""The confirmation gate: no record moves until a person has confirmed this exact plan.

`confirm()` records who confirmed, when, and a digest of every file of the workbook;
`require_confirmed()` recomputes the digest and refuses when the plan is unconfirmed or has
changed since. The loader calls the guard itself, so a run started from anywhere (the CLI,
the Dagster UI, a sensor) is protected, not only runs that pass a blocking check.
"""

from __future__ import annotations

import getpass
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel

from migration_pipeline.errors import PlanNotConfirmed

CONFIRMATION_FILE = "confirmation.yaml"


class Confirmation(BaseModel):
    confirmed_by: str
    confirmed_at: str
    digest: str
    files: dict[str, str]
    decisions: list[str] = []


def plan_files(mappings_dir: Path) -> dict[str, str]:
    """Every workbook file (not the confirmation itself) -> the sha256 of its bytes."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(mappings_dir.glob("*.yaml"))
        if path.name != CONFIRMATION_FILE
    }


def plan_digest(files: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{name}:{digest}" for name, digest in sorted(files.items())).encode()).hexdigest()


def confirm(mappings_dir: Path, decisions: list[str], confirmed_by: str | None = None) -> Confirmation:
    files = plan_files(mappings_dir)
    if not files:
        raise PlanNotConfirmed(f"There is no plan in {mappings_dir} to confirm.", hint="Run `migrate plan` first.")
    record = Confirmation(
        confirmed_by=confirmed_by or getpass.getuser(),
        confirmed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        digest=plan_digest(files),
        files=files,
        decisions=decisions,
    )
    (mappings_dir / CONFIRMATION_FILE).write_text(yaml.safe_dump(record.model_dump(), sort_keys=False), encoding="utf-8")
    return record


def require_confirmed(mappings_dir: Path) -> Confirmation:
    """The confirmation of the current plan, or `PlanNotConfirmed` saying what to confirm."""
    path = mappings_dir / CONFIRMATION_FILE
    if not path.exists():
        raise PlanNotConfirmed(
            f"The migration plan in {mappings_dir} has not been confirmed, so no record may move.",
            hint="Review the maps, then run `migrate confirm`.",
        )
    record = Confirmation.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    files = plan_files(mappings_dir)
    if plan_digest(files) != record.digest:
        changed = sorted(
            name for name in set(files) | set(record.files) if files.get(name) != record.files.get(name)
        )
        raise PlanNotConfirmed(
            f"The migration plan changed after it was confirmed ({', '.join(changed)}).",
            hint="Review the changes, then run `migrate confirm` again.",
        )
    return record
