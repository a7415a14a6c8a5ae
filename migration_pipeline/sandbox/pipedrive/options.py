"""Run-time knobs of the simulator that are not part of the company account."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class PipedriveOptions:
    latency_ms: float = 0.0
    fault_rate: float = 0.0  # share of requests answered 5xx
    applied_fault_share: float = 0.5  # of faulted writes, the share applied before answering 502 (in doubt)
    clock: Callable[[], float] = time.time  # injectable for budget-reset tests
    random_seed: int | None = None  # fixes fault draws and generated field codes for reproducible runs
    burst_window_s: float = 2.0  # Pipedrive's rolling window for both burst limits
    penalty_window_s: float = 10.0  # how far back 429s are counted towards the abuse block
    penalty_factor: float = 3.0  # more than factor x burst 429s in the penalty window earns the block
    block_seconds: float = 60.0  # how long a blocked token receives the HTML 403
