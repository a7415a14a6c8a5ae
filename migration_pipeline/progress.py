"""Progress of long work (extract pages, load sends, verify reads): counts, rates, ETA and Pipedrive tokens.

Everything goes through Python logging, so the same lines reach the CLI, Dagster's captured
logs and any log file:

    with Progress("load persons", total=len(pending), unit="records", tokens=lambda: client.usage.tokens) as progress:
        for batch in batches:
            ...
            progress.advance(len(batch))

- Log lines (every handler): an update at most every `LOG_INTERVAL` seconds (none for work
  shorter than that), then one final line. Plain text: no carriage return, no ANSI code.

      load persons: 1,200/5,000 records (24%), 40/s, ETA 1m35s; 6,000 tokens, 200/s, ~19,000 to go
      load persons: 5,000 records in 2m05s, 40/s; 25,000 tokens, 200/s

- A live line, when a `LiveLineHandler` writes to a terminal: rewritten in place at most
  `LIVE_INTERVAL` apart, one line per task still running (extract runs several tables at
  once), kept below the other log lines. That handler drops the update records (its live line
  already shows them) and prints the final ones; on a stream that is not a terminal it is a
  plain `StreamHandler`.

Tokens are Pipedrive's currency: `tokens` is a meter (`lambda: client.usage.tokens`) read at the
start and at each report, so what the task spent is the meter's rise (work sharing the client
at the same time is counted too); `advance(n, tokens=k)` adds tokens counted by the caller.

No library: tqdm and rich draw bars on a stream of their own; neither logs through `logging`,
tqdm writes carriage returns to files and pipes (tqdm/tqdm#750, #313), and neither knows tokens.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

LOG_INTERVAL = 15.0  # seconds between two update lines of one task in the log
LIVE_INTERVAL = 0.25  # seconds between two redraws of the live line

Clock = Callable[[], float]
log = logging.getLogger("migration_pipeline.progress")


class Progress:
    """Counts `advance`s of one task of `total` (None: unknown) `unit`s and reports them to `logger`."""

    def __init__(
        self,
        name: str,
        total: int | None = None,
        unit: str = "records",
        *,
        tokens: Callable[[], int] | None = None,
        logger: logging.Logger | None = None,
        clock: Clock = time.monotonic,
        log_interval: float | None = None,
        live: bool | None = None,
    ) -> None:
        self.name = name
        self.total = total
        self.unit = unit
        self.count = 0
        self.logger = logger or log
        self.clock = clock
        self.log_interval = LOG_INTERVAL if log_interval is None else log_interval
        self._meter = tokens
        self._meter_start = tokens() if tokens else 0
        self._tokens = 0
        self._counts_tokens = tokens is not None
        self._started = clock()
        self._last_log = self._started
        self._last_live = float("-inf")
        self._closed = False
        self._lock = threading.Lock()
        self._screens = live_handlers(self.logger) if live is not False else []

    # -- counting ----------------------------------------------------------------------------

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        """`n` more units done, and `tokens` more Pipedrive tokens spent (beyond what the meter counts)."""
        with self._lock:
            if self._closed:
                return
            self.count += n
            if tokens:
                self._tokens += tokens
                self._counts_tokens = True
            now = self.clock()
            if self._screens and now - self._last_live >= LIVE_INTERVAL:
                self._last_live = now
                line = self.line(now)
                for screen in self._screens:
                    screen.show(self, line)
            if now - self._last_log >= self.log_interval:
                self._last_log = now
                self.logger.info(self.line(now), extra={"progress": "update"})

    def close(self, failed: bool = False) -> None:
        """The final line (none for a task that had nothing to do, or failed before doing any: its caller
        reports the error); later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for screen in self._screens:
                screen.forget(self)
            if self.count or (self.total and not failed):
                self.logger.info(self.line(self.clock(), final=True, failed=failed), extra={"progress": "final"})

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=kind is not None)

    # -- figures -----------------------------------------------------------------------------

    @property
    def tokens(self) -> int:
        """Tokens spent by this task so far."""
        return self._tokens + ((self._meter() - self._meter_start) if self._meter else 0)

    def line(self, now: float | None = None, final: bool = False, failed: bool = False) -> str:
        """One line: done/total (percent), rate, ETA; tokens, token rate, tokens still to spend at this pace."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._started, 0.0)
        rate = self.count / elapsed if elapsed > 0 else None
        if final and not failed:
            parts = [f"{self.count:,} {self.unit} in {duration(elapsed)}"]
        elif final:
            parts = [f"stopped at {self._done()} after {duration(elapsed)}"]
        else:
            parts = [self._done()]
        if rate is not None:
            parts.append(f"{number(rate)}/s")
        if not final:
            remaining = self.total - self.count if self.total is not None else None
            if remaining is not None and remaining >= 0 and rate:
                parts.append(f"ETA {duration(remaining / rate)}")
        text = f"{self.name}: " + ", ".join(parts)
        if self._counts_tokens:
            spent = self.tokens
            token_parts = [f"{spent:,} tokens"]
            if elapsed > 0:
                token_parts.append(f"{number(spent / elapsed)}/s")
            if not final and self.total is not None and self.count and self.total > self.count and spent:
                token_parts.append(f"~{round(spent / self.count * (self.total - self.count)):,} to go")
            text += "; " + ", ".join(token_parts)
        return text

    def _done(self) -> str:
        if self.total is None:
            return f"{self.count:,} {self.unit}"
        if self.count > self.total:  # an estimate exceeded (a table grew since it was last counted)
            return f"{self.count:,} {self.unit}"
        percent = 100 * self.count // self.total if self.total else 100
        return f"{self.count:,}/{self.total:,} {self.unit} ({percent}%)"


def number(value: float) -> str:
    """A rate: one decimal below 10, whole with separators above."""
    return f"{value:.1f}" if value < 10 else f"{round(value):,}"


def duration(seconds: float) -> str:
    """`45s`, `2m05s`, `1h02m`."""
    seconds = round(max(seconds, 0.0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def live_handlers(logger: logging.Logger) -> list[LiveLineHandler]:
    """The `LiveLineHandler`s on a terminal that records of `logger` reach (at INFO)."""
    found: list[LiveLineHandler] = []
    if not logger.isEnabledFor(logging.INFO):
        return found
    current: logging.Logger | None = logger
    while current is not None:
        found += [handler for handler in current.handlers
                  if isinstance(handler, LiveLineHandler) and handler.live and handler.level <= logging.INFO]
        current = current.parent if current.propagate else None
    return found


CLEAR_DOWN = "\x1b[J"


class LiveLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `StreamHandler` that, on a terminal, keeps the running tasks' progress on live lines below the log.

    Other records are printed above them (the live lines are cleared, the record written, the
    live lines redrawn). Update records of `Progress` are dropped on a terminal (the live lines
    show them), kept elsewhere. Off a terminal it is a plain `StreamHandler`.
    """

    def __init__(self, stream: Any = None, clock: Clock = time.monotonic) -> None:
        super().__init__(stream)
        self.clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._lines: dict[int, str] = {}
        self._drawn = 0  # live lines on screen
        self._last_draw = float("-inf")

    def show(self, task: object, line: str) -> None:
        """Set `task`'s live line (formatted like a record of it); redrawn at most every `LIVE_INTERVAL`."""
        text = self.format(logging.makeLogRecord({"msg": line, "levelname": "INFO", "levelno": logging.INFO}))
        self.acquire()
        try:
            self._lines[id(task)] = text
            now = self.clock()
            if now - self._last_draw >= LIVE_INTERVAL:
                self._last_draw = now
                self._redraw()
        finally:
            self.release()

    def forget(self, task: object) -> None:
        """`task` is over: its live line goes (its final record follows)."""
        self.acquire()
        try:
            if self._lines.pop(id(task), None) is not None:
                self._redraw()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.live:
            super().emit(record)
            return
        if getattr(record, "progress", None) == "update":
            return
        self.acquire()
        try:
            self.stream.write(self._erase())
            self._drawn = 0
            super().emit(record)
            self._redraw()
        finally:
            self.release()

    def _erase(self) -> str:
        """Back to the start of the first live line, and clear to the end of the screen."""
        if not self._drawn:
            return ""
        return "\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else "") + CLEAR_DOWN

    def _redraw(self) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 20)
        lines = [line[:width] for line in self._lines.values()]
        try:
            self.stream.write(self._erase() + "\n".join(lines))
            self.flush()
        except Exception:  # noqa: BLE001 - a console that went away must not stop the work
            pass
        self._drawn = len(lines)
