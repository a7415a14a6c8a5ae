"""How fast one large table streams from the Dataverse simulator into raw Parquet, and in how much memory.

Usage: `python benchmarks/extract.py [--contacts 1000000] [--latency-ms 0]`.

The simulator runs in a child process (its own tables cost it gigabytes at this size and must
not count against the extractor), serving the sandbox's contacts table tiled to `--contacts`
rows with fresh ids. This process runs the real extractor (`steps/extract.py`) through real
HTTP on 127.0.0.1 and prints rows/s and its own peak resident memory. Targets: at least
20,000 rows/s and under 500 MB on the project's 2-core machine. Nothing is asserted: this is a
measurement, not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

from pydantic import SecretStr


def serve_contacts(contacts: int, latency_ms: float, pipe: Connection) -> None:
    """Child: a Dataverse simulator whose contacts table has `contacts` rows; serves until killed."""
    import numpy as np
    import pandas as pd

    from migration_pipeline.sandbox.dataverse.app import DataverseOptions, create_app
    from migration_pipeline.sandbox.serve import LoopbackServer
    from migration_pipeline.sandbox.synthetic import generate

    dataset = generate(40_000, seed=42).dataverse  # 10,000 contacts, tiled below
    base = dataset.tables["contacts"]
    repeats = -(-contacts // len(base))
    tiled = pd.concat([base] * repeats, ignore_index=True).iloc[:contacts].copy()
    tiled["contactid"] = pd.array([str(uuid.UUID(int=int(i) + 1)) for i in np.arange(contacts)], dtype="str")
    tiled["versionnumber"] = pd.array(np.arange(1, contacts + 1), dtype="Int64")
    dataset.tables["contacts"] = tiled
    options = DataverseOptions(latency_ms=latency_ms, request_limit=1_000_000)
    server = LoopbackServer(create_app(dataset, options)).start()
    pipe.send((server.url, options.tenant_id, options.client_id, options.client_secret))
    pipe.recv()  # wait for the parent to finish
    server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()

    from migration_pipeline.dynamics.client import DataverseClient
    from migration_pipeline.steps.extract import TableRef, extract_table
    from migration_pipeline.warehouse.catalog import Warehouse

    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve_contacts, args=(args.contacts, args.latency_ms, child), daemon=True)
    started = time.perf_counter()
    server.start()
    url, tenant, client_id, secret = parent.recv()
    print(f"simulator ready with {args.contacts:,} contacts in {time.perf_counter() - started:.1f} s")
    baseline_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with tempfile.TemporaryDirectory() as home, DataverseClient(url, tenant, client_id, SecretStr(secret), url) as client:
            result = extract_table(client, Warehouse(Path(home)), TableRef("contact", "contacts", track_changes=True))
            requests = client.stats.requests
    finally:
        parent.send("done")
        server.join(timeout=30)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"extracted {result.rows:,} rows x {result.columns} columns in {result.pages} pages "
          f"({requests} requests) in {result.seconds:.1f} s")
    print(f"rate: {result.rows / result.seconds:,.0f} rows/s (target >= 20,000)")
    print(f"peak RSS of the extracting process: {peak_mib:,.0f} MiB (target < 500; {baseline_mib:,.0f} MiB before extracting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
