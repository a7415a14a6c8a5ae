"""Progress: figures, throttling, log lines off a terminal and the live line on one, on a fake clock."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration_pipeline import progress as progress_module
from migration_pipeline.progress import LiveLineHandler, Progress, duration, number


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("migration_pipeline.test_progress")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.handlers.clear()


def attach(logger: logging.Logger, handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger.addHandler(handler)
    return handler


def test_figures() -> None:
    assert [duration(s) for s in (0, 44.6, 125, 3725)] == ["0s", "45s", "2m05s", "1h02m"]
    assert [number(r) for r in (0.25, 9.94, 40.4, 12345.6)] == ["0.2", "9.9", "40", "12,346"]


def test_line_has_rate_eta_and_tokens() -> None:
    clock = Clock()
    spent = [100]  # the client's meter: what was spent before the task is not the task's
    progress = Progress("load persons", total=5000, unit="records", tokens=lambda: spent[0], clock=clock, live=False)
    clock.now += 30
    spent[0] += 6000
    progress.advance(1200)
    assert progress.line() == "load persons: 1,200/5,000 records (24%), 40/s, ETA 1m35s; 6,000 tokens, 200/s, ~19,000 to go"
    assert progress.tokens == 6000
    clock.now += 95
    spent[0] += 19000
    progress.advance(3800)
    assert progress.line(final=True) == "load persons: 5,000 records in 2m05s, 40/s; 25,000 tokens, 200/s"


def test_unknown_or_exceeded_total_has_no_eta_and_no_tokens_without_a_meter() -> None:
    clock = Clock()
    progress = Progress("extract accounts", unit="rows", clock=clock, live=False)
    clock.now += 2
    progress.advance(5000)
    assert progress.line() == "extract accounts: 5,000 rows, 2,500/s"
    grown = Progress("extract contacts", total=100, unit="rows", clock=clock, live=False)
    clock.now += 1
    grown.advance(150)
    assert grown.line() == "extract contacts: 150 rows, 150/s"
    counted = Progress("verify notes", total=10, clock=clock, live=False)
    counted.advance(2, tokens=20)
    assert "20 tokens" in counted.line()


def test_log_lines_are_throttled_plain_and_end_with_one_final_line(logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, logging.StreamHandler(stream))
    clock = Clock()
    with Progress("load deals", total=1000, logger=logger, clock=clock, log_interval=15) as progress:
        for _ in range(100):  # 10 records a second for 100 seconds: 6 update lines, not 100
            clock.now += 1
            progress.advance(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 7
    assert lines[0] == "  load deals: 150/1,000 records (15%), 10/s, ETA 1m25s"
    assert lines[-1] == "  load deals: 1,000 records in 1m40s, 10/s"
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_short_or_empty_work_logs_only_the_final_line_or_nothing(logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, logging.StreamHandler(stream))
    with Progress("load notes", total=3, logger=logger, live=False) as progress:
        progress.advance(3)
    with Progress("extract empty", logger=logger, live=False):
        pass
    assert [line.split(" records")[0] for line in stream.getvalue().splitlines()] == ["  load notes: 3"]


def test_a_failure_says_where_it_stopped(logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, logging.StreamHandler(stream))
    clock = Clock()
    with pytest.raises(RuntimeError), Progress("load files", total=10, unit="files", logger=logger, clock=clock) as progress:
        clock.now += 4
        progress.advance(4)
        raise RuntimeError("boom")
    assert stream.getvalue() == "  load files: stopped at 4/10 files (40%) after 4s, 1.0/s\n"


def test_live_line_on_a_terminal(logger: logging.Logger) -> None:
    terminal = Terminal()
    clock = Clock()
    handler = attach(logger, LiveLineHandler(terminal, clock=clock))
    with Progress("extract accounts", total=100, unit="rows", logger=logger, clock=clock, log_interval=15) as progress:
        for _ in range(40):  # 4 advances a second: live redraws at most every LIVE_INTERVAL, update records dropped
            clock.now += 0.25
            progress.advance(1)
        logger.info("another message")
        clock.now += 0.25
        progress.advance(60)
    out = terminal.getvalue()
    assert out.count("\r") >= 10
    assert "\r\x1b[J  extract accounts: 40/100 rows (40%), 4.0/s, ETA 15s" in out
    assert "  another message\n" in out
    assert out.endswith("\r\x1b[J  extract accounts: 100 rows in 10s, 9.8/s\n")
    assert "\n  extract accounts: 60/100" not in out  # no update record printed as a line of its own
    assert handler.live and not handler._lines


def test_live_handler_off_a_terminal_is_a_plain_stream_handler(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0)
    stream = io.StringIO()
    attach(logger, LiveLineHandler(stream))
    with Progress("verify persons", total=2, logger=logger) as progress:
        progress.advance()
        progress.advance()
    assert len(stream.getvalue().splitlines()) == 3
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_concurrent_tasks_share_the_live_region(logger: logging.Logger) -> None:
    terminal = Terminal()
    clock = Clock()
    attach(logger, LiveLineHandler(terminal, clock=clock))
    first = Progress("extract accounts", logger=logger, clock=clock, unit="rows")
    second = Progress("extract contacts", logger=logger, clock=clock, unit="rows")
    clock.now += 1
    first.advance(10)
    clock.now += 1
    second.advance(20)
    assert terminal.getvalue().endswith("\r\x1b[J  extract accounts: 10 rows, 10/s\n  extract contacts: 20 rows, 10/s")
    logger.info("a line above them")
    assert terminal.getvalue().endswith("\r\x1b[1A\x1b[J  a line above them\n  extract accounts: 10 rows, 10/s\n  extract contacts: 20 rows, 10/s")
    first.close()
    second.close()
    assert terminal.getvalue().endswith("  extract contacts: 20 rows in 2s, 10/s\n")


# --- against the sandbox ------------------------------------------------------------------------


@pytest.mark.slow
def test_extract_load_and_verify_log_progress_with_rates_and_a_final_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migration_pipeline.pipedrive.client import run_sync
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
    from migration_pipeline.steps.load import load_object
    from migration_pipeline.steps.objects import ORGANIZATIONS
    from migration_pipeline.steps.verify import verify_object
    from migration_pipeline.warehouse.catalog import Warehouse
    from migration_pipeline_tests.test_steps.test_existing import staged_and_provisioned

    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0)  # an update line at every advance: the work is short
    stream = io.StringIO()  # not a terminal: plain lines, as in a log file or Dagster's captured logs
    package = logging.getLogger("migration_pipeline")
    handler = LiveLineHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        with Sandbox(SandboxConfig(records=100, seed=3)) as sandbox:
            settings = staged_and_provisioned(sandbox, tmp_path)
            warehouse = Warehouse(settings.migration_home)
            loaded = run_sync(settings, lambda client: load_object(client, warehouse, settings.migration_mappings_dir, ORGANIZATIONS, "run-1"))
            run_sync(settings, lambda client: verify_object(client, warehouse, ORGANIZATIONS))
    finally:
        package.removeHandler(handler)
        package.setLevel(level)

    out = stream.getvalue()
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    extract = [line for line in lines if line.startswith("migration_pipeline.steps.extract extract accounts: ")]
    assert len(extract) >= 2 and re.search(r" rows in \d+s, [\d.,]+/s$", extract[-1]), extract
    load = [line for line in lines if line.startswith("migration_pipeline.steps.load load organizations: ")]
    assert loaded.created > 0 and len(load) >= 2, load
    assert re.search(r"/\d[\d,]* records \(\d+%\), [\d.,]+/s, ETA \d+(s|m\d\ds); [\d,]+ tokens, [\d.,]+/s", load[0]), load[0]
    assert re.search(rf"^migration_pipeline.steps.load load organizations: {loaded.created:,} records in \d+s, [\d.,]+/s; "
                     rf"{5 * loaded.created:,} tokens, [\d.,]+/s$", load[-1]), load[-1]
    verify = [line for line in lines if line.startswith("migration_pipeline.steps.verify verify organizations: ")]
    assert verify and re.search(r" records in \d+s, [\d.,]+/s; 10 tokens, [\d.,]+/s$", verify[-1]), verify


def test_a_task_that_fails_before_doing_anything_leaves_the_error_to_its_caller(logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, logging.StreamHandler(stream))
    with pytest.raises(PermissionError), Progress("extract workflows", logger=logger, live=False):
        raise PermissionError("no read privilege")
    assert stream.getvalue() == ""
