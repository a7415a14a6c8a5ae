"""Crash-safe resume: `migrate run` SIGKILLed at random points of the load, 20 times, then let finish.

The sandbox runs in its own process (`migrate sandbox`), as a user would run it, and every
`migrate run` is a child process killed with SIGKILL: no `finally`, no flush, no atexit. Kill
points are drawn from a seeded generator and spread over the whole load (every object the run
loads, in proportion to its staged rows) by counting the write intents the killed run has
journaled. At the end, Pipedrive must hold exactly one record per staged record of every
object, the ID maps must point at those records, and `migrate verify` must pass.

A failure prints the seed and the kill sequence; `LOAD_CRASH_SEED=<seed>` replays it (the
sequence is the seed's; the instants within a run vary with the machine's speed).

Every table the run loads is covered: the objects found by their "Dynamics ID" and those found
by fingerprint (organization relationships, deal products, activities, notes, files).

Runtime: every `migrate run` spends about 8 to 12 s (imports and Dagster definitions, schema,
extract, transform, provisioning) before its first write, so 21 runs take several minutes:
hence `slow` and a longer timeout than the suite's default.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import migration_pipeline
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.steps.objects import LEADS, OBJECTS, MigratedObject
from migration_pipeline.steps.provision import PROVISION_RUN
from migration_pipeline.warehouse.catalog import Warehouse

RECORDS = 2000  # Dataverse records: 200 accounts, and every other object in proportion
KILLS = 20
MIN_MID_WRITE = 15  # kills that must land with a write in flight (an intent with no outcome)
LATENCY_MS = 40  # each write spends 40 ms inside Pipedrive: some kills land after it was applied, before the answer
SEED = int(os.environ.get("LOAD_CRASH_SEED", "20240607"))
PACKAGE_ROOT = Path(migration_pipeline.__file__).resolve().parents[1]  # children run this same code

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _fingerprinted(name: str, table: str) -> MigratedObject:
    """A loaded table with no "Dynamics ID" (its field entity has no fields): the loader finds its records by fingerprint."""
    return MigratedObject(name, table, f"no_{name}", "", "", "")


# Every table the run loads, in load order, with where its records live in the simulator's store.
LOADED: tuple[MigratedObject, ...] = (
    OBJECTS[0], _fingerprinted("organizations_relationships", "organization_relationships"), *OBJECTS[1:],
    _fingerprinted("deal_products", "deal_products"), LEADS, _fingerprinted("activities", "activities"),
    _fingerprinted("notes", "notes"), _fingerprinted("files", "files"),
)


# -- processes ---------------------------------------------------------------------------------
def child_environment(settings: dict[str, str], workdir: Path) -> dict[str, str]:
    """This process's environment minus any migration settings, plus exactly `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
    env.update(settings)
    env["MIGRATION_HOME"] = str(workdir / "home")
    env["MIGRATION_MAPPINGS_DIR"] = str(workdir / "mappings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    return env


def start_migrate(args: list[str], env: dict[str, str], workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migration_pipeline.cli", *args],
            env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def migrate(args: list[str], env: dict[str, str], workdir: Path, log: Path, timeout: float = 240) -> tuple[int, str]:
    process = start_migrate(args, env, workdir, log)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"`migrate {' '.join(args)}` did not finish in {timeout} s:\n{log.read_text()[-3000:]}")
    return code, log.read_text()


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything it started (its own session), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`migrate sandbox` on free ports; returns once it has printed its settings."""
    env_file, out, err = workdir / "sandbox.env", workdir / "sandbox.out", workdir / "sandbox.err"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "migration_pipeline.cli", "sandbox", "--records", str(RECORDS), "--seed", "42",
             "--port", "0", "--env-file", str(env_file)],
            env=env, cwd=workdir, stdout=stdout, stderr=stderr, start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`migrate sandbox` exited with {process.returncode}:\n{err.read_text()[-3000:]}")
        printed = [line.removeprefix("export ") for line in out.read_text().splitlines() if line.startswith("export ")]
        if env_file.exists() and printed and printed == env_file.read_text().splitlines():
            return process, dict(line.split("=", 1) for line in printed)
        time.sleep(0.1)
    kill(process)
    pytest.fail(f"`migrate sandbox` printed no settings in 120 s:\n{err.read_text()[-3000:]}")


def stop_sandbox(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill(process)


# -- the journal --------------------------------------------------------------------------------
def journal_entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by the kill
            continue
    return entries


class JournalTail:
    """Reads a growing journal file incrementally: create intents per object so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.intents: Counter[str] = Counter()

    def poll(self) -> Counter[str]:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry["phase"] == "intent" and entry["operation"] == "create":
                self.intents[entry["object"]] += 1
        return self.intents


@dataclass
class Kill:
    """Where one SIGKILL was aimed, and what it interrupted according to the killed run's own journal."""

    number: int
    aim: str  # the object the kill was aimed at
    target: int  # create intents of that object the run could journal before the kill
    delay_ms: int  # extra random delay once the target was reached
    alive: bool = True  # still running when the signal was sent
    load_s: float = 0.0  # from the run's start to its journal file (its first write)
    kill_s: float = 0.0  # from the run's start to the kill
    intents: int = 0
    outcomes: int = 0
    in_flight: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, object, source id): intent, no outcome
    at_object: str | None = None  # the object of the last write journaled before the kill
    journal: Path | None = None  # the killed run's journal

    @property
    def mid_write(self) -> bool:
        return self.alive and bool(self.in_flight)

    def line(self) -> str:
        return (f"kill {self.number:2}: aimed at {self.aim} intent {self.target} +{self.delay_ms} ms -> "
                f"{self.intents} intents, {self.outcomes} outcomes, {len(self.in_flight)} in flight, in {self.at_object}"
                f" (journal opened at {self.load_s:.1f} s, killed at {self.kill_s:.1f} s)"
                f"{'' if self.alive else ' (the run had already exited)'}")


def describe(kill: Kill, journal: Path | None) -> Kill:
    if journal is None or not journal.exists():
        return kill
    kill.journal = journal
    entries = journal_entries(journal)
    intents = [(e["operation"], e["object"], e["source_id"], e["seq"]) for e in entries if e["phase"] == "intent"]
    done = {(e["operation"], e["object"], e["source_id"], e["seq"]) for e in entries if e["phase"] == "outcome"}
    kill.intents, kill.outcomes = len(intents), len(done)
    kill.in_flight = [(operation, obj, source_id) for (operation, obj, source_id, seq) in intents
                      if (operation, obj, source_id, seq) not in done]
    kill.at_object = intents[-1][1] if intents else None
    return kill


def run_journals(journal_dir: Path) -> set[Path]:
    """The journal files of `migrate run`s: one per run, named by its id (provisioning keeps one of its own for the
    custom fields it creates, which holds no load write)."""
    return {path for path in journal_dir.glob("*.jsonl") if path.stem != PROVISION_RUN}


def attempted(journal_dir: Path) -> Counter[str]:
    """Per object, the source rows any run has journaled a create for."""
    rows = {(e["object"], e["source_id"]) for path in journal_dir.glob("*.jsonl") for e in journal_entries(path)
            if e["phase"] == "intent" and e["operation"] == "create"}
    return Counter(obj for obj, _ in rows)


class KillPlan:
    """Where each kill aims: the kills are shared out over the objects the run loads in proportion to their
    staged rows (at least one each), and within an object spaced evenly over what is left (+-70%, seeded)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.order = [item.name for item in LOADED]
        self.staged: dict[str, int] | None = None  # known once a run has transformed
        self.budget: dict[str, int] = {}
        self.current = self.order[0]  # the object the last kill landed in

    def start(self, staged: dict[str, int], kills: int) -> None:
        """Share `kills` out (the first kill, already made, included)."""
        self.staged = staged
        loaded = [name for name in self.order if staged.get(name)]
        total = sum(staged[name] for name in loaded)
        spare = kills - len(loaded)
        shares = {name: spare * staged[name] / total for name in loaded}
        self.budget = {name: 1 + int(shares[name]) for name in loaded}
        for name in sorted(loaded, key=lambda name: int(shares[name]) - shares[name])[: kills - sum(self.budget.values())]:
            self.budget[name] += 1

    def aim(self, journal_dir: Path) -> tuple[str, int]:
        """The object to kill in, and after how many of its create intents in the next run."""
        if self.staged is None:  # nothing transformed yet: somewhere early in the first object
            return self.order[0], self.rng.randint(5, 40)
        tried = attempted(journal_dir)
        # Rows never attempted are surely left (a row in flight at a kill may be left too): the target never
        # exceeds what the run will really create, so the run is still loading when it is reached.
        left = {name: self.staged[name] - tried[name] for name in self.order[self.order.index(self.current):]}
        name = next((name for name, rows in left.items() if rows > 0 and self.budget.get(name, 0) > 0),
                    next((name for name, rows in left.items() if rows > 0), self.current))
        spacing = max(left[name], 1) / (max(self.budget.get(name, 0), 1) + 0.5)
        return name, max(1, min(left[name] - 1, round(spacing * self.rng.uniform(0.3, 1.7))))

    def landed(self, aimed: str, name: str | None) -> None:
        if name is None or name not in self.budget:
            return
        if self.order.index(name) > self.order.index(aimed):  # the aimed object finished first: its kills move on
            self.budget[name] += self.budget.pop(aimed, 0)
        self.budget[name] = max(0, self.budget[name] - 1)
        self.current = name


# -- Pipedrive, read over HTTP -----------------------------------------------------------------
def dynamics_id_key(pipedrive: httpx.Client, item: MigratedObject) -> str | None:
    """The field code of the object's "Dynamics ID" field; None when the object takes no custom fields."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        response = pipedrive.get(f"/api/v2/{item.field_entity}Fields", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body = response.json()
        found += [row["field_code"] for row in body["data"] or [] if row.get("field_name") == DYNAMICS_ID_FIELD]
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            break
    assert len(found) <= 1, f"{item.field_entity} has {len(found)} fields named {DYNAMICS_ID_FIELD!r}: {found}"
    return found[0] if found else None


def custom_value(record: dict[str, Any], key: str) -> Any:
    return (record.get("custom_fields") or {}).get(key, record.get(key))


def table_of(snapshot: dict[str, list[dict[str, Any]]], item: MigratedObject) -> str:
    return item.name if item.name in snapshot else item.resource


def check_one_record_per_staged_record(
    item: MigratedObject, staged_ids: set[str], idmap: dict[str, str], before: list[dict[str, Any]],
    after: list[dict[str, Any]], key: str | None,
) -> list[str]:
    """What is wrong with `item` in Pipedrive: duplicates, gaps, strays, ID-map mismatches (empty if nothing)."""
    problems: list[str] = []
    preexisting = {str(record["id"]) for record in before}
    live = {str(record["id"]): record for record in after if not record.get("is_deleted")}
    created = {record_id: record for record_id, record in live.items() if record_id not in preexisting}
    gone = preexisting - set(live)
    if gone:
        problems.append(f"{len(gone)} records that existed before the migration are gone: {sorted(gone)[:5]}")

    if set(idmap) != staged_ids:
        problems.append(f"ID map and staged rows differ: {len(staged_ids - set(idmap))} staged rows not in the map "
                        f"{sorted(staged_ids - set(idmap))[:5]}, {len(set(idmap) - staged_ids)} mapped rows not staged")
    targets = Counter(idmap.values())
    shared = {pipedrive_id: n for pipedrive_id, n in targets.items() if n > 1}
    if shared:
        problems.append(f"{len(shared)} Pipedrive records are mapped from more than one source row: {list(shared.items())[:5]}")
    dangling = {source_id: pipedrive_id for source_id, pipedrive_id in idmap.items() if pipedrive_id not in live}
    if dangling:
        problems.append(f"{len(dangling)} ID map rows point at no live record: {list(dangling.items())[:5]}")
    linked_to_preexisting = {source_id for source_id, pipedrive_id in idmap.items() if pipedrive_id in preexisting}

    if key is not None:
        carried = Counter(str(custom_value(record, key)) for record in created.values() if custom_value(record, key))
        duplicates = {value: n for value, n in carried.items() if n > 1}
        if duplicates:
            problems.append(f"DUPLICATES: {len(duplicates)} Dynamics ids carried by more than one new record: "
                            f"{list(duplicates.items())[:5]}")
        unmarked = [record_id for record_id, record in created.items() if not custom_value(record, key)]
        if unmarked:
            problems.append(f"{len(unmarked)} new records carry no {DYNAMICS_ID_FIELD!r}: {unmarked[:5]}")
        expected = staged_ids - linked_to_preexisting
        if set(carried) != expected:
            problems.append(f"GAPS/STRAYS: {len(expected - set(carried))} staged rows have no new record "
                            f"{sorted(expected - set(carried))[:5]}, {len(set(carried) - expected)} new records carry "
                            f"a Dynamics id that is not staged {sorted(set(carried) - expected)[:5]}")
        wrong = {value: (idmap.get(value), record_id) for record_id, record in created.items()
                 if (value := str(custom_value(record, key) or "")) in idmap and idmap[value] != record_id}
        if wrong:
            problems.append(f"{len(wrong)} ID map rows point elsewhere than the record carrying that Dynamics id "
                            f"(source id: (mapped, carrying)): {list(wrong.items())[:5]}")
    else:  # no custom fields: the ID map alone accounts for what was created
        mapped_new = {pipedrive_id for source_id, pipedrive_id in idmap.items() if source_id not in linked_to_preexisting}
        if set(created) != mapped_new:
            problems.append(f"{len(set(created) - mapped_new)} new records are in no ID map row (duplicates or strays): "
                            f"{sorted(set(created) - mapped_new)[:5]}")
    return problems


# -- the test ------------------------------------------------------------------------------------
def test_sigkill_at_random_points_of_the_load_resumes_with_no_duplicate_and_no_gap(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    sandbox, settings = start_sandbox(tmp_path)
    running: subprocess.Popen[bytes] | None = None
    pipedrive = httpx.Client(base_url=settings["PIPEDRIVE_URL"], headers={"x-api-token": settings["PIPEDRIVE_API_TOKEN"]},
                             timeout=60)
    try:
        env = child_environment(settings, tmp_path)
        home = Path(env["MIGRATION_HOME"])
        journal_dir = home / "journal"
        options = pipedrive.post("/_sandbox/options", json={"latency_ms": LATENCY_MS})
        assert options.status_code == 200, options.text
        # Every `migrate run` rediscovers the schema and extracts again (about 300 Dataverse requests): 22 runs in
        # a few minutes would reach Dataverse's 6,000 requests per 5 minutes and wait out a 100 s Retry-After.
        limits = httpx.put(f"{settings['DYNAMICS_URL']}/_sandbox/limiter", json={"request_limit": 1_000_000}, timeout=30)
        assert limits.status_code == 204, limits.text
        dataverse_before = httpx.get(f"{settings['DYNAMICS_URL']}/_sandbox/stats", timeout=30).json()
        before = pipedrive.get("/_sandbox/snapshot").json()

        for args in (["plan"], ["confirm", "--yes"]):
            code, output = migrate(args, env, tmp_path, tmp_path / f"{args[0]}.log")
            assert code == 0, f"`migrate {' '.join(args)}` failed:\n{output[-3000:]}"

        kills: list[Kill] = []
        plan = KillPlan(rng)
        order = plan.order
        history: list[str] = [f"seed {SEED}, {RECORDS} records, latency {LATENCY_MS} ms, objects {order}"]
        while len(kills) < KILLS:
            number = len(kills) + 1
            aim, target = plan.aim(journal_dir)
            delay_ms = rng.randint(0, 60)
            known = run_journals(journal_dir)
            log = tmp_path / f"run-{number:02}.log"
            running = start_migrate(["run"], env, tmp_path, log)
            run_started, load_s = time.monotonic(), 0.0
            tail: JournalTail | None = None
            deadline = time.monotonic() + 180
            while running.poll() is None and time.monotonic() < deadline:
                if tail is None:
                    new = run_journals(journal_dir) - known
                    tail = JournalTail(new.pop()) if new else None
                    load_s = time.monotonic() - run_started
                if tail is not None:
                    intents = tail.poll()
                    later = any(intents[name] for name in order[order.index(aim) + 1:])
                    if intents[aim] >= target or later:  # there, or the aimed object finished in this run
                        break
                time.sleep(0.01)
            time.sleep(delay_ms / 1000)
            alive = running.poll() is None
            kill_s = time.monotonic() - run_started
            kill(running)
            running = None
            new = run_journals(journal_dir) - known
            event = describe(Kill(number, aim, target, delay_ms, alive, load_s, kill_s), new.pop() if new else None)
            kills.append(event)
            history.append(event.line())
            assert alive, (f"`migrate run` exited before it could be killed (kill {number} of {KILLS}):\n"
                           + "\n".join(history) + "\n" + log.read_text()[-3000:])
            if plan.staged is None:
                plan.start({item.name: len(Warehouse(home).read_staged(item.name)) for item in LOADED}, KILLS)
                history.append(f"staged rows to load: {plan.staged}; kills per object: {plan.budget}")
            plan.landed(aim, event.at_object)

        known = run_journals(journal_dir)
        final_code, final_output = migrate(["run"], env, tmp_path, tmp_path / "run-final.log")
        history.append(f"final run: exit {final_code}")
        # What became of the writes in flight at each kill: sent again by a later run (the kill came before
        # Pipedrive applied them), or never again (applied, and found by the next run's read-back).
        later_journals = [k.journal for k in kills] + sorted(run_journals(journal_dir) - known)
        resent = settled = 0
        for index, event in enumerate(kills):
            again = {(e["operation"], e["object"], e["source_id"]) for path in later_journals[index + 1:] if path is not None
                     for e in journal_entries(path) if e["phase"] == "intent"}
            resent += sum(1 for row in event.in_flight if row in again)
            settled += sum(1 for row in event.in_flight if row not in again)
        history.append(f"writes in flight at a kill: {resent} sent again by a later run (not applied), {settled} never "
                       "sent again (applied by Pipedrive, linked by the next run's read-back)")
        elapsed_kills = time.monotonic() - started
        dataverse_after = httpx.get(f"{settings['DYNAMICS_URL']}/_sandbox/stats", timeout=30).json()
        history.append(f"Dataverse: {({k: v - dataverse_before.get(k, 0) for k, v in dataverse_after.items()})} "
                       f"over {len(kills) + 3} commands")

        after = pipedrive.get("/_sandbox/snapshot").json()
        warehouse = Warehouse(home)
        problems: dict[str, list[str]] = {}
        for item in LOADED:
            staged_ids = set(warehouse.read_staged(item.name)["source_id"].astype(str))
            idmap = warehouse.idmap(item.name)
            table = table_of(after, item)
            found = check_one_record_per_staged_record(
                item, staged_ids, idmap, before.get(table, []), after[table], dynamics_id_key(pipedrive, item)
            )
            history.append(f"{item.name}: {len(staged_ids)} staged, {len(idmap)} mapped, "
                           f"{sum(1 for r in after[table] if not r.get('is_deleted')) - len(before.get(table, []))} new records")
            if found:
                problems[item.name] = found
        mid_write = [k for k in kills if k.mid_write]
        by_object = Counter(k.at_object for k in kills)
        history.append(f"{len(kills)} kills, {len(mid_write)} with writes in flight; kills per object {dict(by_object)}")
        report = "\n".join(history)
        print(report)
        print(f"elapsed {elapsed_kills:.0f} s through the final run")

        assert not problems, "exactly one Pipedrive record per staged record does not hold:\n" + "\n".join(
            f"  {name}: {line}" for name, lines in problems.items() for line in lines) + "\n" + report
        assert final_code == 0, f"the final `migrate run` failed:\n{final_output[-3000:]}\n{report}"
        assert len(mid_write) >= MIN_MID_WRITE, f"too few kills landed mid-write:\n{report}"
        assert settled, f"no write in flight at a kill had reached Pipedrive: the read-back was never needed:\n{report}"
        # Small tables (43 relationships, deal products in bulk) can finish before a kill aimed at them lands: the kills
        # must reach at least half the loaded tables, both kinds (found by "Dynamics ID" and by fingerprint) among them.
        to_load = {name for name, rows in (plan.staged or {}).items() if rows}
        hit = to_load & set(by_object)
        fingerprinted = {item.name for item in LOADED if item.field_entity.startswith("no_")}
        assert len(hit) * 2 >= len(to_load) and hit & fingerprinted and hit - fingerprinted, (
            f"kills landed in too few tables ({sorted(hit)} of {sorted(to_load)}):\n{report}")

        verify_code, verify_output = migrate(["verify"], env, tmp_path, tmp_path / "verify.log")
        assert verify_code == 0, f"`migrate verify` failed after the crashes:\n{verify_output[-3000:]}\n{report}"
    finally:
        if running is not None:
            kill(running)
        pipedrive.close()
        stop_sandbox(sandbox)
