"""How long the sandbox takes to generate, and how much memory it holds.

Usage: `python benchmarks/generate_dataset.py [--records 100000] [--seed 42]`. The target is
under 30 s for 100,000 records on the project's 2-core machine; the rows per entity set are
printed so a regression in one table's size shows up next to the time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from migration_pipeline.sandbox.synthetic import generate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    started = time.perf_counter()
    data = generate(args.records, args.seed)
    elapsed = time.perf_counter() - started
    # ru_maxrss is KiB on Linux: the peak resident size of this process, Python and pandas included.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames_mib = sum(t.memory_usage(deep=True).sum() for t in data.dataverse.tables.values()) / 2**20

    counts = data.dataverse.counts()
    width = max(len(name) for name in counts)
    for name, rows in sorted(counts.items()):
        print(f"{name:<{width}}  {rows:>10,}")
    print(f"{'total rows':<{width}}  {sum(counts.values()):>10,}")
    print(f"records={args.records:,} seed={args.seed}: generated in {elapsed:.2f} s, "
          f"peak RSS {peak_mib:,.0f} MiB, tables {frames_mib:,.0f} MiB, "
          f"{len(data.dataverse.attachments):,} lazy attachments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
