"""What a full verify costs in Pipedrive tokens, against what the load spent: the issue's budget is 5 %.

Usage: `python benchmarks/verify_cost.py [--records 10000] [--seed 42]`.

Runs a real migration in process against a fresh sandbox of `--records` business records (the
`extract` job, the proposed plan confirmed, the `full_migration` job), then verifies every load
step (`steps.verify.VERIFIED`) with one client, and prints:

- the tokens the load steps spent (`pipedrive/<step>` rows of `audit.runs`; provisioning apart),
- the tokens the verify spent, per object and per operation, and its share of the load's.

Nothing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
PROVISIONING = ("pipedrive/custom_fields", "pipedrive/pipelines", "pipedrive/lead_labels")
BUDGET = 0.05


def migrate(settings: Any) -> None:
    """Extract, plan, confirm and run the full migration, as `migrate plan` / `confirm` / `run` do."""
    import dagster as dg

    from migration_pipeline.definitions import build_definitions
    from migration_pipeline.pipedrive.client import run_sync
    from migration_pipeline.steps.plan import confirm_plan, write_plan
    from migration_pipeline.warehouse.catalog import Warehouse

    definitions = build_definitions(settings)

    def run(job: str) -> None:
        result = definitions.resolve_job_def(job).execute_in_process(run_config=QUIET, raise_on_error=False,
                                                                     instance=dg.DagsterInstance.ephemeral())
        if not result.success:
            raise SystemExit(f"the {job} job failed")

    run("extract")
    users = run_sync(settings, lambda client: client.users())
    write_plan(Warehouse(settings.migration_home), settings.migration_mappings_dir, users, settings.pipedrive_fallback_owner_email)
    confirm_plan(settings.migration_mappings_dir, confirmed_by="benchmarks/verify_cost.py")
    run("full_migration")


async def verify_everything(settings: Any) -> tuple[dict[str, int], dict[str, Any], int]:
    """Every load step verified with one client: tokens per object, the client's usage, differences found."""
    from migration_pipeline.pipedrive.client import PipedriveClient
    from migration_pipeline.steps.verify import VERIFIED, verify_object
    from migration_pipeline.warehouse.catalog import Warehouse

    warehouse = Warehouse(settings.migration_home)
    per_object, differences = {}, 0
    async with PipedriveClient.from_settings(settings) as client:
        for name in VERIFIED:
            before = client.usage.tokens
            result = await verify_object(client, warehouse, name)
            per_object[name] = client.usage.tokens - before
            differences += len(result.differences)
        return per_object, client.usage.snapshot(), differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
    from migration_pipeline.settings import Settings
    from migration_pipeline.warehouse.catalog import Warehouse

    with tempfile.TemporaryDirectory() as home, Sandbox(SandboxConfig(records=args.records, seed=args.seed)) as sandbox:
        environment = {name.lower(): value for name, value in sandbox.environment().items()}
        settings = Settings(_env_file=None, **environment, migration_home=Path(home) / "home",  # type: ignore[call-arg]
                            migration_mappings_dir=Path(home) / "mappings")
        started = time.monotonic()
        migrate(settings)
        migrated = time.monotonic() - started
        steps = Warehouse(settings.migration_home).query("SELECT step, sum(tokens) AS tokens FROM audit.runs GROUP BY step")
        tokens = dict(zip(steps["step"], steps["tokens"].astype(int), strict=True))
        provisioning = sum(tokens.get(step, 0) for step in PROVISIONING)
        load = sum(value for step, value in tokens.items() if step.startswith("pipedrive/") and step not in PROVISIONING)
        started = time.monotonic()
        per_object, usage, differences = asyncio.run(verify_everything(settings))
        verified = time.monotonic() - started

    print(f"sandbox: {args.records:,} records (seed {args.seed}); migration {migrated:.0f} s, verify {verified:.1f} s")
    print(f"load:   {load:,} tokens in the load steps (+ {provisioning:,} provisioning)")
    share = usage["tokens"] / load if load else float("nan")
    print(f"verify: {usage['tokens']:,} tokens in {usage['requests']:,} requests = {share:.1%} of the load's "
          f"(budget {BUDGET:.0%}: {'within' if share <= BUDGET else 'OVER'}); {differences} differences")
    for name, spent in per_object.items():
        print(f"  {name:<30} {spent:>6,}")
    for operation, spent in sorted(usage["tokens_by_operation"].items(), key=lambda item: -item[1]):
        print(f"  {operation:<50} {spent:>6,} tokens, {usage['requests_by_operation'][operation]:,} requests")


if __name__ == "__main__":
    main()
