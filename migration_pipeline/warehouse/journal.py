"""The write journal: every write to Pipedrive, recorded before it is sent and after it returns.

One JSON line per event in `journal/<run_id>.jsonl`, flushed and fsynced before the request
goes out, so that a process killed at any instant leaves a record of every write that may
have happened. An `intent` with no matching `outcome` is *in doubt*: the loader reconciles it
by reading Pipedrive back, never by sending it again blindly. `audit.operations` in DuckDB is
built from these files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

Phase = Literal["intent", "outcome"]


def request_digest(method: str, path: str, body: Any) -> str:
    """A stable fingerprint of a request (for the audit table), never the request itself."""
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class JournalEntry:
    run_id: str
    seq: int
    phase: Phase
    operation: str  # create | update | delete | link
    object: str
    source_id: str
    at: str = field(default_factory=utc_now)
    request_digest: str | None = None
    pipedrive_id: str | None = None
    outcome: str | None = None  # ok | failed | not_applied | in_doubt
    detail: str | None = None
    before_image: dict[str, Any] | None = None


class Journal:
    """Appends entries for one run, durably."""

    def __init__(self, directory: Path, run_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self.run_id = run_id
        self._file = self.path.open("a", encoding="utf-8")
        self._seq = sum(1 for _ in self.path.open(encoding="utf-8"))

    def _append(self, entry: JournalEntry) -> JournalEntry:
        self._file.write(json.dumps(asdict(entry), default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return entry

    def intent(self, operation: str, object: str, source_id: str, digest: str, before_image: dict[str, Any] | None = None) -> JournalEntry:
        self._seq += 1
        return self._append(
            JournalEntry(self.run_id, self._seq, "intent", operation, object, source_id, request_digest=digest, before_image=before_image)
        )

    def outcome(self, intent: JournalEntry, outcome: str, pipedrive_id: str | int | None = None, detail: str | None = None) -> JournalEntry:
        return self._append(
            JournalEntry(
                self.run_id,
                intent.seq,
                "outcome",
                intent.operation,
                intent.object,
                intent.source_id,
                request_digest=intent.request_digest,
                pipedrive_id=None if pipedrive_id is None else str(pipedrive_id),
                outcome=outcome,
                detail=detail,
            )
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every entry of every run, oldest file first; a torn last line (a kill mid-write) is skipped."""
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
