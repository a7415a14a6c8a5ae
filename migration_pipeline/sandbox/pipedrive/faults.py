"""Injected server faults, including the in-doubt write.

A real 502 from Pipedrive's edge can arrive after the write was committed; a client that
blindly retries a create then makes a duplicate. The simulator reproduces both outcomes so
the loader's reconciliation is exercised: `applied` writes are carried out and then answered
502, the others are refused with 503 before anything happens.
"""

from __future__ import annotations

import random
from enum import Enum

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Fault(Enum):
    REFUSED = 503  # nothing was done
    APPLIED = 502  # the write went through, the answer was lost


def draw_fault(rng: random.Random, method: str, fault_rate: float, applied_share: float) -> Fault | None:
    if fault_rate <= 0 or rng.random() >= fault_rate:
        return None
    if method.upper() in WRITE_METHODS and rng.random() < applied_share:
        return Fault.APPLIED
    return Fault.REFUSED
