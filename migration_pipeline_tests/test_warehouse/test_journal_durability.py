"""The journal's durability rule with group commit: an entry is fsynced before its await returns.

`os.fsync` is wrapped (the real one still runs) to remember what the file held when each fsync
finished: that is what a crash at any later instant would leave. A gate can hold an fsync, to
show that the event loop keeps running meanwhile and that nobody is told "written" early. The
last test sends real creates through the client to the Pipedrive simulator on 127.0.0.1, which
checks on each POST's arrival that its intent is already on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.sandbox.pipedrive.app import PipedriveOptions, create_app
from migration_pipeline.sandbox.serve import LoopbackServer
from migration_pipeline.warehouse import journal as journal_module
from migration_pipeline.warehouse.journal import Journal, read_entries, request_digest
from migration_pipeline_tests.test_pipedrive.conftest import ADMIN_TOKEN, WINDOW, small_seed

GATE_TIMEOUT = 30.0  # only ever reached when the code under test is broken


class Disk:
    """What survives a crash: the journal's lines as of the last finished fsync, and a gate on the next ones."""

    def __init__(self) -> None:
        self.synced: list[str] = []
        self.fsyncs = 0
        self.inside = threading.Event()  # an fsync is waiting at the gate
        self.gate = threading.Event()  # cleared: the next fsync waits until it is set
        self.gate.set()
        self._lock = threading.Lock()
        self.path: Path | None = None

    def fsync(self, fd: int) -> None:
        self.inside.set()
        assert self.gate.wait(GATE_TIMEOUT), "an fsync was held at the gate and never released"
        os_fsync(fd)
        with self._lock:
            self.fsyncs += 1
            if self.path is not None:
                self.synced = self.path.read_text(encoding="utf-8").splitlines()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(line) for line in self.synced]

    def holds(self, phase: str, source_id: str) -> bool:
        return any(entry["phase"] == phase and entry["source_id"] == source_id for entry in self.entries())


os_fsync = os.fsync


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    recorder = Disk()
    monkeypatch.setattr(journal_module.os, "fsync", recorder.fsync)
    yield recorder
    recorder.gate.set()


def open_journal(directory: Path, disk: Disk, run_id: str = "run-1") -> Journal:
    journal = Journal(directory, run_id)
    disk.path = journal.path
    return journal


def test_an_awaited_intent_is_on_disk_when_the_await_returns_and_the_loop_runs_during_the_fsync(tmp_path: Path, disk: Disk) -> None:
    async def scenario() -> None:
        with open_journal(tmp_path, disk) as journal:
            disk.gate.clear()
            writing = asyncio.create_task(journal.aintent("create", "organizations", "a", "digest-a"))
            assert await asyncio.to_thread(disk.inside.wait, GATE_TIMEOUT)  # the writer thread is in fsync
            ticks = 0
            for _ in range(5):  # the event loop is free meanwhile
                await asyncio.sleep(0)
                ticks += 1
            assert ticks == 5 and not writing.done() and not disk.holds("intent", "a")
            disk.gate.set()
            entry = await writing
            assert disk.holds("intent", "a") and entry.seq == 1
            await journal.aoutcome(entry, "ok", pipedrive_id=7)
            assert disk.holds("outcome", "a")

    asyncio.run(scenario())


def test_concurrent_writers_share_one_fsync_and_keep_their_order(tmp_path: Path, disk: Disk) -> None:
    async def scenario() -> Journal:
        with open_journal(tmp_path, disk) as journal:
            disk.gate.clear()
            first = asyncio.create_task(journal.aintent("create", "organizations", "s0", "d"))
            assert await asyncio.to_thread(disk.inside.wait, GATE_TIMEOUT)
            rest = [asyncio.create_task(journal.aintent("create", "organizations", f"s{n}", "d")) for n in range(1, 50)]
            await asyncio.sleep(0)  # all 49 are queued behind the fsync in progress
            assert not any(task.done() for task in rest)
            disk.gate.set()
            entries = await asyncio.gather(first, *rest)
            assert all(disk.holds("intent", entry.source_id) for entry in entries)
        return journal

    journal = asyncio.run(scenario())
    assert journal.commits == disk.fsyncs == 2  # the first alone, the 49 queued during its fsync together
    written = list(read_entries(tmp_path))
    assert [entry["source_id"] for entry in written] == [f"s{n}" for n in range(50)]
    assert [entry["seq"] for entry in written] == list(range(1, 51))


def test_a_synchronous_write_lands_after_the_queued_ones_and_is_on_disk_when_it_returns(tmp_path: Path, disk: Disk) -> None:
    async def scenario() -> None:
        with open_journal(tmp_path, disk) as journal:
            disk.gate.clear()
            first = asyncio.create_task(journal.aintent("create", "organizations", "a", "d"))
            assert await asyncio.to_thread(disk.inside.wait, GATE_TIMEOUT)
            queued = asyncio.create_task(journal.aintent("create", "organizations", "b", "d"))
            await asyncio.sleep(0)
            synchronous = asyncio.create_task(asyncio.to_thread(journal.intent, "create", "organizations", "c", "d"))
            await asyncio.sleep(0.01)
            disk.gate.set()
            await asyncio.gather(first, queued)
            await synchronous
            assert disk.holds("intent", "c")

    asyncio.run(scenario())
    assert [entry["source_id"] for entry in read_entries(tmp_path)] == ["a", "b", "c"]


def test_the_synchronous_api_is_unchanged(tmp_path: Path, disk: Disk) -> None:
    with open_journal(tmp_path, disk) as journal:
        intent = journal.intent("update", "persons", "p1", request_digest("PATCH", "persons", {"name": "A"}), before_image={"name": "B"})
        assert disk.holds("intent", "p1")
        journal.outcome(intent, "failed", pipedrive_id=5, detail="refused")
        assert disk.holds("outcome", "p1")
    assert disk.fsyncs == 2
    with open_journal(tmp_path, disk) as again:  # a journal reopened for the same run goes on numbering
        assert again.intent("create", "persons", "p2", "d").seq == 3
    entries = list(read_entries(tmp_path))
    assert [(e["phase"], e["seq"], e["outcome"]) for e in entries] == [("intent", 1, None), ("outcome", 1, "failed"), ("intent", 3, None)]
    assert entries[0]["before_image"] == {"name": "B"} and entries[1]["pipedrive_id"] == "5"


def test_close_writes_what_is_queued_and_stops_the_writer(tmp_path: Path, disk: Disk) -> None:
    async def scenario() -> Journal:
        journal = open_journal(tmp_path, disk)
        await journal.aintent("create", "organizations", "a", "d")
        writer = journal._writer
        assert writer is not None and writer.is_alive()
        journal.close()
        assert not writer.is_alive()
        with pytest.raises(ValueError):
            await journal.aintent("create", "organizations", "b", "d")
        return journal

    asyncio.run(scenario())
    assert [entry["source_id"] for entry in read_entries(tmp_path)] == ["a"]


def test_a_failed_fsync_reaches_every_waiter_of_its_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_module.os, "fsync", broken)

    async def scenario() -> list[BaseException | Any]:
        with Journal(tmp_path, "run-1") as journal:
            return await asyncio.gather(*(journal.aintent("create", "organizations", f"s{n}", "d") for n in range(5)),
                                        return_exceptions=True)

    results = asyncio.run(scenario())
    assert all(isinstance(result, OSError) for result in results)  # nobody is told "written" and sends its request


def test_every_create_reaches_the_simulator_only_after_its_intent_is_on_disk(tmp_path: Path, disk: Disk) -> None:
    """Eight workers create organizations through the real client; the simulator checks each POST against the disk."""
    app = create_app(small_seed(), PipedriveOptions(burst_window_s=WINDOW, random_seed=7, latency_ms=5))
    journal = open_journal(tmp_path, disk)
    early: list[str] = []
    seen: list[str] = []

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """In front of the simulator: a POST whose intent is not on disk yet is a broken rule."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        source_id = json.loads(b"".join(m.get("body", b"") for m in messages))["name"]
        seen.append(source_id)
        if not disk.holds("intent", source_id):
            early.append(source_id)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    async def load(client: PipedriveClient, names: Iterator[str]) -> None:
        async def worker() -> None:
            for name in names:
                body = {"name": name}
                intent = await journal.aintent("create", "organizations", name, request_digest("POST", "organizations", body))
                record = await client.create("organizations", body)
                await journal.aoutcome(intent, "ok", pipedrive_id=record["id"])
                assert disk.holds("outcome", name)  # durable before anything (the ID map) may record it

        await asyncio.gather(*(worker() for _ in range(8)))

    with LoopbackServer(guarded) as server:

        async def main() -> None:
            async with PipedriveClient(server.url, [SecretStr(ADMIN_TOKEN)], rate_window=WINDOW) as client:
                await load(client, iter([f"org-{n}" for n in range(40)]))

        with journal:
            asyncio.run(main())

    assert sorted(seen) == sorted(f"org-{n}" for n in range(40)) and early == []
    entries = list(read_entries(tmp_path))
    assert len(entries) == 80 and {entry["phase"] for entry in entries} == {"intent", "outcome"}
    assert disk.fsyncs == journal.commits <= 80
