"""The state of one simulated Dataverse environment, and the controls tests drive it with.

`app.state.simulator` is a `DataverseSimulator`; the same controls are served as JSON under
`/_sandbox/` (see `controls.py`) for a test or `migrate demo` in another process.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from migration_pipeline.sandbox.dataset import DataverseDataset
from migration_pipeline.sandbox.dataverse.annotate import Annotator
from migration_pipeline.sandbox.dataverse.auth import TokenIssuer
from migration_pipeline.sandbox.dataverse.faults import Faults
from migration_pipeline.sandbox.dataverse.metadata_api import MetadataApi
from migration_pipeline.sandbox.dataverse.options import DataverseOptions
from migration_pipeline.sandbox.dataverse.store import Store
from migration_pipeline.sandbox.dataverse.tables import TablesApi
from migration_pipeline.sandbox.dataverse.throttle import Limiter


class DataverseSimulator:
    def __init__(self, dataset: DataverseDataset, options: DataverseOptions) -> None:
        self.options = options
        self.store = Store(dataset)
        self.issuer = TokenIssuer(options)
        self.limiter = Limiter(options.request_limit, options.window_seconds, options.throttle_penalty_seconds)
        self.faults = Faults(options.fault_seed)
        self.latency_ms = options.latency_ms
        self.metadata = MetadataApi(self.store.entities, dataset.relationships)
        self.tables = TablesApi(self.store, Annotator(self.store, dataset.relationships), dataset.attachments, options)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DataverseSimulator(tables={len(self.store.entity_sets)}, options={self.options!r})"

    async def delay(self) -> None:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)

    def record(self, outcome: str) -> None:
        with self._stats_lock:
            self._stats[outcome] += 1

    # --- controls ---

    def create_row(self, entity_set: str, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a row (id generated unless given); bumps versionnumber, sets createdon/modifiedon."""
        return self.store.create(entity_set, values)

    def update_row(self, entity_set: str, row_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Change some columns of a row; bumps versionnumber and modifiedon."""
        return self.store.update(entity_set, row_id, values)

    def delete_row(self, entity_set: str, row_id: str) -> None:
        """Remove a row and log the delete for change tracking."""
        self.store.delete(entity_set, row_id)

    def set_latency(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms

    def inject_fault(self, path_prefix: str, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `count` requests under `path_prefix` with `status` (429 carries Retry-After)."""
        self.faults.add(path_prefix, status, count, retry_after)

    def set_fault_rate(self, rate: float, status: int = 503, path_prefix: str = "/api/", retry_after: int | None = None) -> None:
        self.faults.set_rate(rate, status, path_prefix, retry_after)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset_limiter(self) -> None:
        self.limiter.reset()

    def set_limits(self, request_limit: int | None = None, window_seconds: float | None = None, penalty_seconds: float | None = None) -> None:
        self.limiter.configure(request_limit, window_seconds, penalty_seconds)

    def expire_change_tracking(self) -> None:
        """Every delta link issued so far now fails with "Version stamp ... expired"."""
        self.store.expire_change_tracking()

    def set_readable(self, entity_set: str, readable: bool) -> None:
        """Grant or revoke the Read privilege of the application user on one table (403 PrivilegeDenied while revoked)."""
        self.store.set_readable(entity_set, readable)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)
