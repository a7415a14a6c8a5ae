"""The shared pause gate: one deadline per identity, honoured by threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
import time

from migration_pipeline.dynamics.throttle import PauseGate, shared_gate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_an_open_gate_does_not_wait() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    assert gate.remaining() == 0
    assert gate.wait(clock.sleep) == 0
    assert clock.now == 100.0


def test_a_pause_holds_requests_until_it_ends() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    gate.pause(5)
    assert gate.remaining() == 5
    assert gate.wait(clock.sleep) == 5
    assert gate.remaining() == 0


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    gate.pause(10)
    gate.pause(2)
    assert gate.remaining() == 10


def test_a_pause_extended_while_waiting_is_waited_out() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    gate.pause(3)

    def sleep_while_another_worker_is_throttled(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now == 103.0:
            gate.pause(4)

    assert gate.wait(sleep_while_another_worker_is_throttled) == 7
    assert clock.now == 107.0


def test_one_gate_per_identity() -> None:
    first = shared_gate("https://login.example/", "Tenant-A", "client-1")
    assert shared_gate("https://login.example", "tenant-a", "CLIENT-1") is first
    assert shared_gate("https://login.example", "tenant-a", "client-2") is not first
    assert shared_gate("https://login.example", "tenant-b", "client-1") is not first


def test_a_pause_holds_every_thread() -> None:
    gate = PauseGate()
    gate.pause(0.3)
    released: list[float] = []
    started = time.monotonic()

    def worker() -> None:
        gate.wait()
        released.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(released) == 4
    assert min(released) - started >= 0.29


def test_a_pause_holds_asyncio_tasks_without_blocking_the_loop() -> None:
    gate = PauseGate()

    async def main() -> tuple[float, int]:
        gate.pause(0.2)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while gate.remaining() > 0:
                ticks += 1
                await asyncio.sleep(0.01)

        started = time.monotonic()
        await asyncio.gather(gate.wait_async(), gate.wait_async(), ticker())
        return time.monotonic() - started, ticks

    elapsed, ticks = asyncio.run(main())
    assert elapsed >= 0.19
    assert ticks >= 5  # the loop kept running other tasks during the pause
