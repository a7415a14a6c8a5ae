"""The write journal: every write to Pipedrive, recorded before it is sent and after it returns.

One JSON line per event in `journal/<run_id>.jsonl`, flushed and fsynced before the request
goes out (on the caller's thread, or for the event loop on a writer thread that fsyncs the
entries of concurrent workers together), so that a process killed at any instant leaves a record of every write that may
have happened. An `intent` with no matching `outcome` is *in doubt*: the loader reconciles it
by reading Pipedrive back, never by sending it again blindly. `audit.operations` in DuckDB is
built from these files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """Appends entries for one run, durably.

    Two ways to write, to the same file, in the order they are called:

    - `intent` / `outcome` (synchronous) return once the entry is fsynced;
    - `await aintent(...)` / `await aoutcome(...)` (for the event loop) also return only once
      the entry is fsynced, but the write and the fsync happen on a writer thread that
      commits every entry queued while the previous fsync ran in one go (group commit): the
      event loop is never held by the disk, and N concurrent writers cost one fsync, not N.

    Either way the rule holds: an intent is on disk before its request may be sent, and an
    outcome is on disk before the ID map may record it.
    """

    def __init__(self, directory: Path, run_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self.run_id = run_id
        self._file = self.path.open("a", encoding="utf-8")
        with self.path.open(encoding="utf-8") as existing:
            self._seq = sum(1 for _ in existing)
        self._file_lock = threading.Lock()  # one commit at a time: writes, flush, fsync
        self._queue_lock = threading.Lock()  # guards `_pending` and the writer's start and stop
        self._wake = threading.Condition(self._queue_lock)
        self._pending: list[tuple[str, _Waiter | None]] = []  # lines queued, in call order, not yet written
        self._writer: threading.Thread | None = None
        self._closing = False
        self.commits = 0  # fsyncs done: fewer than entries when writes were grouped

    # -- the one place that writes --------------------------------------------------------------
    def _commit(self, line: str | None = None) -> None:
        """Write every queued line, then `line`, and fsync once; then tell their waiters.

        Lines are taken under the file lock, so the file keeps the order in which they were queued.
        """
        with self._file_lock:
            with self._queue_lock:
                batch, self._pending = self._pending, []
            if not batch and line is None:
                return
            error: BaseException | None = None
            try:
                self._file.write("".join(text for text, _ in batch) + (line or ""))
                self._file.flush()
                os.fsync(self._file.fileno())
                self.commits += 1
            except BaseException as exc:  # the waiters learn it; a synchronous caller gets it raised
                error = exc
        for _, waiter in batch:
            if waiter is not None:
                waiter.done(error)
        if error is not None and line is not None:
            raise error

    def _append(self, entry: JournalEntry) -> JournalEntry:
        """Write `entry` (after anything queued before it) and fsync, on the calling thread."""
        self._commit(_line(entry))
        return entry

    async def _append_async(self, entry: JournalEntry) -> JournalEntry:
        """Queue `entry` for the writer thread and wait, without holding the event loop, until it is fsynced."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._queue_lock:
            if self._closing:
                raise ValueError(f"the journal {self.path.name} is closed")
            self._pending.append((_line(entry), waiter))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name=f"journal-{self.run_id}", daemon=True)
                self._writer.start()
            self._wake.notify()
        # Shielded: a cancelled caller stops waiting, the entry is still written (it may already be).
        await asyncio.shield(waiter.future)
        return entry

    def _write_loop(self) -> None:
        while True:
            with self._queue_lock:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending and self._closing:
                    return
            self._commit()

    # -- entries ---------------------------------------------------------------------------------
    def _intent_entry(self, operation: str, object: str, source_id: str, digest: str,
                      before_image: dict[str, Any] | None) -> JournalEntry:
        self._seq += 1
        return JournalEntry(self.run_id, self._seq, "intent", operation, object, source_id, request_digest=digest, before_image=before_image)

    def _outcome_entry(self, intent: JournalEntry, outcome: str, pipedrive_id: str | int | None, detail: str | None) -> JournalEntry:
        return JournalEntry(
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

    def intent(self, operation: str, object: str, source_id: str, digest: str, before_image: dict[str, Any] | None = None) -> JournalEntry:
        """Record a write about to be sent; on disk when this returns."""
        return self._append(self._intent_entry(operation, object, source_id, digest, before_image))

    def outcome(self, intent: JournalEntry, outcome: str, pipedrive_id: str | int | None = None, detail: str | None = None) -> JournalEntry:
        """Record how a write ended; on disk when this returns."""
        return self._append(self._outcome_entry(intent, outcome, pipedrive_id, detail))

    async def aintent(self, operation: str, object: str, source_id: str, digest: str,
                      before_image: dict[str, Any] | None = None) -> JournalEntry:
        """`intent` for the event loop: on disk when the await returns, fsynced with the others queued meanwhile."""
        return await self._append_async(self._intent_entry(operation, object, source_id, digest, before_image))

    async def aoutcome(self, intent: JournalEntry, outcome: str, pipedrive_id: str | int | None = None,
                       detail: str | None = None) -> JournalEntry:
        """`outcome` for the event loop: on disk when the await returns, fsynced with the others queued meanwhile."""
        return await self._append_async(self._outcome_entry(intent, outcome, pipedrive_id, detail))

    def close(self) -> None:
        """Write what is still queued, stop the writer thread and close the file."""
        with self._queue_lock:
            self._closing = True
            writer = self._writer
            self._wake.notify_all()
        if writer is not None:
            writer.join()
        self._commit()
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Waiter:
    """An event-loop future that the writer thread resolves once its entry is fsynced."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future

    def done(self, error: BaseException | None) -> None:
        def resolve() -> None:
            if self.future.done():
                return
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)

        try:
            self.loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _line(entry: JournalEntry) -> str:
    # `vars`, not `asdict`: the same keys in the same order, without deep-copying the before-image first.
    return json.dumps(vars(entry), default=str) + "\n"


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every entry of every run, oldest file first; a torn last line (a kill mid-write) is skipped."""
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
