"""The `migrate` command.

Every subcommand exits 0 on success. A failure the user can act on (a `MigrationError`)
prints one paragraph, what happened and what to do, and exits with that error's code; any
other exception is a bug: one line unless `--debug`, which keeps the traceback.
"""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click

from migration_pipeline.errors import MigrationError, PlanNotConfirmed, VerificationFailed
from migration_pipeline.settings import Settings, load_settings

QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class MigrateGroup(click.Group):
    """Turns errors into one actionable paragraph and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except MigrationError as error:
            if debug:
                raise
            click.echo(f"Error: {error.message}" + (f" {error.hint}" if error.hint else ""), err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Exception as error:  # noqa: BLE001 - the one place that turns bugs into a message
            if debug:
                raise
            click.echo(
                f"Error: unexpected {type(error).__name__}: {error}. This is a bug in migration-pipeline; "
                "rerun with --debug for the traceback and report it.",
                err=True,
            )
            ctx.exit(70)


@click.group(cls=MigrateGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Move a CRM from Dynamics 365 into Pipedrive, field by field, with verification and rollback."""
    import warnings

    # Dagster warns on every load that some of its own parameters are beta: noise to someone running a migration.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    progress = logging.getLogger("migration_pipeline")
    if not progress.handlers:
        from migration_pipeline.progress import LiveLineHandler

        handler = LiveLineHandler(sys.stderr)  # progress on live lines on a terminal, plain lines in a log
        handler.setFormatter(logging.Formatter("  %(message)s"))
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
    ctx.obj = ctx.obj or {}


def is_brief(ctx: click.Context) -> bool:
    """Whether to print each step's outcome in a few lines (`migrate demo` tells the whole story at once)."""
    return bool((ctx.obj or {}).get("brief"))


def settings_of(ctx: click.Context) -> Settings:
    """The settings for this invocation: pinned by `migrate demo`, else from the environment."""
    settings = (ctx.obj or {}).get("settings")
    return settings if settings is not None else load_settings()


def run_job(settings: Settings, name: str, run_config: dict[str, Any] | None = None, run_id: str | None = None) -> Any:
    """Run one of the Dagster jobs in this process, exactly as the UI would, and return its result.

    A blocking check that fails surfaces as an error naming the check (`VerificationFailed` for
    the field diff); any error raised by our own code keeps its type (and hint).
    """
    import dagster as dg
    from dagster._core.errors import DagsterAssetCheckFailedError  # not exported at the top level

    from migration_pipeline.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(name)
    with dg.DagsterInstance.ephemeral() as instance:
        try:
            return job.execute_in_process(run_config={**QUIET_DAGSTER, **(run_config or {})}, instance=instance, run_id=run_id)
        except DagsterAssetCheckFailedError as error:
            if "plan/workbook" in str(error) or "plan__workbook" in str(error):
                raise PlanNotConfirmed(
                    f"The plan's blocking check failed, so no record moved: {error}.",
                    hint="Run `migrate confirm` (it shows what blocks), then run the command again.",
                ) from None
            raise VerificationFailed(
                f"A blocking check failed, so the steps after it did not run: {error}.",
                hint="Run `migrate verify` for the differences (and the report with the first ones side by side), "
                "and read validation.field_diff in the warehouse.",
            ) from None


def materialized(result: Any) -> dict[str, dict[str, Any]]:
    """Asset key -> metadata (plain values) of everything a job result materialized."""
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        out[materialization.asset_key.to_user_string()] = {key: value.value for key, value in materialization.metadata.items()}
    return out


def checks(result: Any) -> dict[str, Any]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


@main.command()
@click.option("--records", default=10_000, show_default=True, help="Dataverse business records to generate (100 to 1,000,000).")
@click.option("--seed", default=42, show_default=True, help="Random seed: the same seed gives the same data.")
@click.option("--port", default=8760, show_default=True, help="Dataverse and Entra on PORT, Pipedrive on PORT+1 (0: free ports).")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the settings to this .env file.")
def sandbox(records: int, seed: int, port: int, env_file: Path | None) -> None:
    """Serve both simulators on 127.0.0.1 until stopped, and print the settings that point at them."""
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

    if not 100 <= records <= 1_000_000:
        raise click.BadParameter("must be between 100 and 1,000,000", param_hint="--records")
    started = time.monotonic()
    click.echo(f"# Generating {records:,} records (seed {seed}) and starting the simulators...", err=True)
    with Sandbox(SandboxConfig(records=records, seed=seed, port=port)) as running:
        lines = [f"export {name}={value}" for name, value in running.environment().items()]
        click.echo("\n".join(lines))
        if env_file is not None:
            env_file.write_text("\n".join(line.removeprefix("export ") for line in lines) + "\n")
            env_file.chmod(0o600)
        click.echo(
            f"# Ready in {time.monotonic() - started:.1f} s: Dynamics at {running.dynamics_url}, "
            f"Pipedrive at {running.pipedrive_url}. Press Ctrl-C to stop.",
            err=True,
        )
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("# Stopped.", err=True)


@main.command()
@click.option("--plan", "plan_name", default="premium", show_default=True,
              help="Pipedrive plan the token budget is estimated for: lite, growth, premium, ultimate "
              "(legacy: essential, advanced, professional, power, enterprise).")
@click.option("--seats", default=10, show_default=True, type=click.IntRange(min=1), help="Paid Pipedrive seats.")
@click.pass_context
def audit(ctx: click.Context, plan_name: str, seats: int) -> None:
    """Discover the schema, extract, and report what there is to move -> reports/scope.md and audit.scope."""
    from migration_pipeline.steps.audit import daily_budget, read_findings, summary_lines
    from migration_pipeline.warehouse.catalog import Warehouse

    settings = settings_of(ctx)
    plan_name = plan_name.strip().lower()
    daily_budget(plan_name, seats)  # a wrong plan fails now, not after the extract

    result = run_job(settings, "audit", {"ops": {"audit__scope": {"config": {"plan": plan_name, "seats": seats}}}})
    for line in summary_lines(read_findings(Warehouse(settings.migration_home)), brief=is_brief(ctx)):
        click.echo(f"  {line}")
    click.echo(f"  Scope report: {materialized(result)['audit/scope']['report']}")


@main.command()
@click.pass_context
def plan(ctx: click.Context) -> None:
    """Extract, then write the proposed maps (fields, owners, stages) into the mappings dir, unconfirmed."""
    from migration_pipeline.pipedrive.client import run_sync
    from migration_pipeline.steps.plan import load_plan, open_questions

    settings = settings_of(ctx)
    run_sync(settings, lambda client: client.users())  # first: a bad token fails before a long extract
    written = materialized(run_job(settings, "plan"))
    extracted = {key: metadata for key, metadata in written.items() if key.startswith("dynamics/")}
    width = max((len(key) for key in extracted), default=0)
    if is_brief(ctx):
        rows = sum(int(metadata.get("dagster/row_count", 0)) for key, metadata in extracted.items() if key != "dynamics/schema")
        click.echo(f"  extracted {len(extracted) - ('dynamics/schema' in extracted)} tables, {rows:,} rows, to Parquet under raw/")
    for key, metadata in sorted(extracted.items()) if not is_brief(ctx) else ():
        click.echo(f"  extracted {key:<{width}} {metadata.get('dagster/row_count', 0):>9,} rows")
    plan = load_plan(settings.migration_mappings_dir)
    statuses: dict[str, int] = {}
    for owner in plan.owner_map.owners:
        statuses[owner.status] = statuses.get(owner.status, 0) + 1
    click.echo("  owners: " + ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in sorted(statuses.items())))
    for pipeline in plan.stage_map.pipelines:
        stages = ", ".join(f"{s.pipedrive_stage} ({s.probability}%)" for s in pipeline.stages)
        click.echo(f"  pipeline {pipeline.pipedrive_pipeline}: {stages}")
    blocking, decisions = open_questions(plan)
    click.echo(f"  wrote the plan in {settings.migration_mappings_dir}")
    click.echo(f"  {len(blocking)} blocking, {len(decisions)} decisions to confirm. Next: review, then `migrate confirm`.")


@main.command()
@click.option("--yes", is_flag=True, help="Confirm without prompting (for scripts).")
@click.pass_context
def confirm(ctx: click.Context, yes: bool) -> None:
    """Show what is unresolved and mark the plan confirmed; refuses while anything blocks."""
    from migration_pipeline.steps.plan import confirm_plan, load_plan, open_questions

    settings = settings_of(ctx)
    blocking, decisions = open_questions(load_plan(settings.migration_mappings_dir))
    for line in blocking:
        click.echo(f"  BLOCKS: {line}")
    for line in decisions if not is_brief(ctx) else ():
        click.echo(f"  decision: {line}")
    if is_brief(ctx) and decisions:
        click.echo(f"  {len(decisions)} decisions taken as proposed (owners to the fallback user, new custom fields...: "
                   "`migrate confirm` lists them)")
    if not blocking and not yes and not click.confirm("Confirm this plan?", default=False):
        raise PlanNotConfirmed("The plan was not confirmed.", hint="Run `migrate confirm` again when ready.")
    record = confirm_plan(settings.migration_mappings_dir)
    click.echo(f"  confirmed by {record.confirmed_by} at {record.confirmed_at} (plan digest {record.digest[:12]}).")


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """The full migration: transform, provision, load, verify; resumes where a previous run stopped."""
    settings = settings_of(ctx)
    from migration_pipeline.mapping.confirmation import require_confirmed

    require_confirmed(settings.migration_mappings_dir)  # refuse before extracting anything
    print_outcomes(run_job(settings, "full_migration"), brief=is_brief(ctx))


@main.command()
@click.option("--since", help="Read every table by `modifiedon` from this ISO timestamp (e.g. 2026-12-05T08:00:00Z), "
              "instead of from each table's cursor.")
@click.pass_context
def delta(ctx: click.Context, since: str | None) -> None:
    """One delta pickup: what changed in Dynamics since the last run, transformed, loaded in place, verified."""
    settings = settings_of(ctx)
    from migration_pipeline.defs.delta.assets import CHANGES_KEY
    from migration_pipeline.mapping.confirmation import require_confirmed

    require_confirmed(settings.migration_mappings_dir)  # refuse before reading anything
    config = {"ops": {CHANGES_KEY.to_python_identifier(): {"config": {"since": since}}}} if since else None
    result = run_job(settings, "delta_migration", config)
    picked = materialized(result).get("dynamics/changes", {})
    click.echo(f"  dynamics/changes: {picked.get('changed', 0):,} changed, {picked.get('deleted', 0):,} deleted "
               f"in {picked.get('tables_changed', 0)} tables")
    print_outcomes(result, brief=is_brief(ctx))


def print_outcomes(result: Any, brief: bool = False) -> None:
    """What a migration job did, step by step: staged, loaded (created, already there, refused), checks, report
    (`brief`: a line each for the staging, the load, the checks and the report)."""
    assets = materialized(result)
    if brief:
        click.echo("\n".join(brief_outcome_lines(assets, checks(result))))
        return
    for key, metadata in sorted(assets.items()):
        if key.startswith("pipedrive/") and "created" in metadata:
            updated = f", {metadata['links_set']:,} updated" if metadata.get("links_set") else ""
            if metadata["created"] == 0 and metadata["in_doubt"] == 0 and metadata["refused"] == 0:
                click.echo(f"  {key}: nothing new to create ({metadata['dagster/row_count']:,} already in Pipedrive){updated}")
            else:
                click.echo(
                    f"  {key}: created {metadata['created']:,}, already there {metadata['already_loaded'] + metadata['linked_by_read_back'] + metadata.get('linked_existing', 0):,}, "
                    f"refused {metadata['refused']}, in doubt {metadata['in_doubt']}{updated} ({metadata['tokens_spent']:,} tokens)"
                )
            if metadata.get("values_refused") or metadata.get("deferred_links"):
                click.echo(f"    {metadata.get('values_refused', 0)} values with no Pipedrive option (staged.rejects, rule 'option'); "
                           f"{metadata.get('deferred_links', 0)} links wait for records not loaded yet")
        elif key.startswith("staged/"):
            click.echo(f"  {key}: {metadata['dagster/row_count']:,} staged, {metadata['rejected_records']} records and "
                       f"{metadata['rejected_fields']} values rejected (staged.rejects)")
    for name, evaluation in checks(result).items():
        detail = f" ({evaluation.description})" if evaluation.description else ""
        click.echo(f"  check {name}: {'passed' if evaluation.passed else 'FAILED'}{detail}")
    if "reports/migration" in assets:
        click.echo(f"  report: {assets['reports/migration']['path']}")


def brief_outcome_lines(assets: dict[str, dict[str, Any]], evaluations: dict[str, Any]) -> list[str]:
    """A migration job's outcome in four lines: staged, written to Pipedrive (per object), checks, report."""
    lines = []
    staged = {key: metadata for key, metadata in assets.items() if key.startswith("staged/")}
    if staged:
        rejected = sum(m["rejected_records"] for m in staged.values())
        lines.append(f"  staged {sum(m['dagster/row_count'] for m in staged.values()):,} records of {len(staged)} objects; "
                     f"{rejected:,} record{'' if rejected == 1 else 's'} and "
                     f"{sum(m['rejected_fields'] for m in staged.values()):,} values rejected (staged.rejects says why)")
    loads = {key.removeprefix("pipedrive/"): m for key, m in assets.items() if key.startswith("pipedrive/") and "created" in m}
    if loads:
        def total(*names: str) -> int:
            return sum(int(m.get(name, 0) or 0) for m in loads.values() for name in names)

        created = ", ".join(f"{name.replace('_', ' ')} {m['created']:,}" for name, m in loads.items() if m["created"])
        done = [f"created {total('created'):,}" + (f" ({created})" if created else "")]
        done += [f"{total(*names):,} {label}" for names, label in (
            (("already_loaded", "linked_by_read_back", "linked_existing"), "already there"), (("links_set",), "updated"),
            (("deleted",), "deleted"), (("refused",), "refused"), (("in_doubt",), "in doubt")) if total(*names)]
        lines.append(textwrap.fill(f"Pipedrive: {'; '.join(done)}; {total('tokens_spent'):,} tokens", width=110,
                                   initial_indent="  ", subsequent_indent="    "))
    failed = [name for name, evaluation in evaluations.items() if not evaluation.passed]
    lines.append(f"  checks: {len(evaluations) - len(failed)} passed" + (f", FAILED: {', '.join(failed)}" if failed else
                 " (the field diff and the reconciliation of every object)"))
    if "reports/migration" in assets:
        lines.append(f"  report: {assets['reports/migration']['path']}")
    return lines


@main.command()
@click.option("--size", default=100, show_default=True, type=click.IntRange(min=1),
              help="Records chosen per object; the records that cover every field, stage and owner bucket, and the records "
              "they link to, come on top.")
@click.pass_context
def sample(ctx: click.Context, size: int) -> None:
    """Load a deterministic sample (every object, field, stage and owner bucket, with what it links to) and diff it."""
    settings = settings_of(ctx)
    from migration_pipeline.defs.sample.assets import SAMPLE_KEY
    from migration_pipeline.mapping.confirmation import require_confirmed

    require_confirmed(settings.migration_mappings_dir)  # refuse before staging anything
    result = run_job(settings, "sample_migration", {"ops": {SAMPLE_KEY.to_python_identifier(): {"config": {"size": size}}}})
    chosen = materialized(result).get("plan/sample", {})
    if chosen:
        click.echo(f"  plan/sample: {chosen['dagster/row_count']:,} records showing {chosen['covered']} (plan.sample says why "
                   f"each is in); owner buckets: {chosen['owner_buckets']}" + ("" if is_brief(ctx) else "; stages:"))
        if not is_brief(ctx):
            click.echo("\n".join("    " + line.removeprefix("- ") for line in str(chosen["stages"]).splitlines()))
            click.echo("\n".join("    " + line for line in str(chosen["objects"]).splitlines()))
    print_outcomes(result, brief=is_brief(ctx))
    if not is_brief(ctx):
        click.echo("  Next: `migrate verify` for the field-by-field summary, then `migrate run` loads the rest "
                   "(the sampled records are not created again).")


@main.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Field-level diff and reconciliation of everything loaded; exits non-zero if any field differs."""
    import uuid

    from migration_pipeline.steps.report import verification_lines
    from migration_pipeline.warehouse.catalog import Warehouse

    settings = settings_of(ctx)
    run_id = str(uuid.uuid4())
    try:
        run_job(settings, "verify", run_id=run_id)
        stopped = False
    except VerificationFailed:  # every check ran (nothing is downstream of them): the tables say what they found
        stopped = True
    lines, failed = verification_lines(Warehouse(settings.migration_home), run_id, brief=is_brief(ctx))
    click.echo("\n".join(lines))
    if failed or stopped:
        raise VerificationFailed(
            f"Verification failed: {', '.join(failed) or 'a blocking check'}.",
            hint="Read the report above (the first differences of every field, side by side), or query "
            "validation.field_diff and validation.reconciliation in the warehouse.",
        )


@main.command()
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="Undo this run only (a run id of audit.operations); every run when omitted.")
@click.option("--yes", is_flag=True, help="Undo without prompting (for scripts).")
@click.pass_context
def rollback(ctx: click.Context, run_id: str | None, yes: bool) -> None:
    """Undo the migration from the audit trail: delete what it created, restore what it changed; resumable."""
    from migration_pipeline.steps.rollback import ORDER, plan_rollback
    from migration_pipeline.warehouse.catalog import Warehouse

    settings = settings_of(ctx)
    plan = plan_rollback(Warehouse(settings.migration_home), run_id)
    click.echo("\n".join(plan.lines()) if not is_brief(ctx) else
               f"  plan: {sum(count for _, operation, count in plan.counts() if operation == 'delete'):,} deletes (records, then the "
               f"fields, pipelines and labels provisioning created), "
               f"{sum(count for _, operation, count in plan.counts() if operation == 'restore'):,} restores, about {plan.tokens():,} tokens")
    if plan.actions and not yes and not click.confirm("Undo this in Pipedrive?", default=False):
        click.echo("Rollback cancelled: nothing was changed.", err=True)
        ctx.exit(1)
    result = run_job(settings, "rollback", {"ops": {"undo_migration": {"config": {"run": run_id}}}})
    summary = result.output_for_node("undo_migration")
    for name in ORDER if not is_brief(ctx) else ():
        counts = [f"{summary[key][name]:,} {label}" for key, label in (("deleted", "deleted"), ("already_gone", "already gone"),
                                                                        ("restored", "restored")) if summary[key].get(name)]
        if counts:
            click.echo(f"  {name}: {', '.join(counts)}")
    for line in summary["failed"][:10]:
        click.echo(f"  failed: {line}", err=True)
    if is_brief(ctx):
        click.echo(f"  {sum(sum(summary[key].values()) for key in ('deleted', 'already_gone')):,} deleted, "
                   f"{sum(summary['restored'].values()):,} restored")
    click.echo(f"  {summary['tokens_spent']:,} tokens, {summary['requests']:,} requests")
    if summary["failed"]:
        from migration_pipeline.errors import ApiError

        raise ApiError(f"{len(summary['failed'])} rollback writes failed (first: {summary['failed'][0]}).",
                       hint="Fix the cause and run `migrate rollback` again: it resumes, and what is undone stays undone.")
    click.echo("  Rolled back: the ID maps of the runs undone are empty; `migrate run` starts clean.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for scripts).")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """What is extracted, planned, staged, loaded and verified; Pipedrive tokens spent today and budget left; what to run next."""
    from migration_pipeline.steps.status import migration_status
    from migration_pipeline.warehouse.catalog import Warehouse

    settings = settings_of(ctx)  # reads MIGRATION_HOME and the mappings dir only: no network
    report = migration_status(Warehouse(settings.migration_home), settings.migration_mappings_dir)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    click.echo("\n".join(status_lines(report)))


def status_lines(report: Any) -> list[str]:
    """`migrate status` as text: the home and plan, a row per object, the token lines, the next command."""
    def cell(value: int | None, applies: bool = True) -> str:
        return "-" if not applies else "?" if value is None else f"{value:,}"

    when = f", the last at {report.extracted_at}" if report.extracted_at else ""
    extracted = f"{report.raw_tables} tables extracted{when}" if report.raw_tables else "nothing extracted yet"
    lines = [f"MIGRATION_HOME {report.home}: {extracted}", f"Plan ({report.mappings_dir}): {report.plan_detail}"]
    if report.warehouse_note:
        lines.append(textwrap.fill(f"Note: {report.warehouse_note}.", width=110, subsequent_indent="  "))
    header = ("object", "extracted", "staged", "rejected", "loaded", "to load", "verified", "differing")
    rows = []
    for item in report.objects:
        staged = item.staged is not None
        rejected = "-" if not staged else "?" if item.rejected_records is None else f"{item.rejected_records:,}/{item.rejected_values:,}"
        differing = None if item.verified is None else (item.differing or 0) + (item.missing or 0)
        rows.append((item.name, cell(item.extracted, item.extracted is not None), cell(item.staged, staged), rejected,
                     cell(item.loaded, item.loadable), cell(item.left_to_load, item.loadable),
                     cell(item.verified, item.loadable and item.verified is not None),
                     cell(differing, item.loadable and item.verified is not None)))
    if any(item.extracted is not None or item.staged is not None for item in report.objects):
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(value.ljust(widths[0]) if i == 0 else value.rjust(widths[i]) for i, value in enumerate(row)))
        waiting = [item.name for item in report.objects if not item.loadable]
        note = ("(rejected: whole records/single values in staged.rejects; differing: values differing + records missing"
                + (f"; loaded '-': {', '.join(waiting)} wait for the loader)" if waiting else ")"))
        lines.append(textwrap.fill(note, width=110, initial_indent="  ", subsequent_indent="   "))
    lines += budget_lines(report.budget) if not report.warehouse_note else [
        "Pipedrive tokens and the remaining load: unknown until the warehouse can be read"]
    lines.append(textwrap.fill(f"Next: {('`' + report.next_command + '`') if report.next_command else 'nothing to run'}. "
                               f"{report.advice}", width=110, subsequent_indent="  "))
    return lines


def budget_lines(budget: Any) -> list[str]:
    """The token lines of `migrate status`: spent today, the daily budget left, what the rest of the load needs."""
    if budget.steps_today:
        limited = f", {budget.rate_limited_today:,} answered 429 (rate limited)" if budget.rate_limited_today else ""
        lines = [f"Pipedrive tokens spent today (UTC): {budget.tokens_today:,} in {budget.requests_today:,} requests "
                 f"over {budget.steps_today} recorded steps{limited}"]
    else:
        lines = ["Pipedrive tokens spent today (UTC): none recorded"]
    left = budget.estimated_left
    if left is None:
        lines.append("Daily token budget left: unknown (no recorded step has seen Pipedrive's figures yet)")
    else:
        source = (f"Pipedrive's figure at {budget.reported_at:%H:%M} UTC" if budget.reported_today
                  else "estimated: the budget has reset since Pipedrive last reported it, less today's recorded spend")
        limit = f" of {budget.daily_token_limit:,}" if budget.daily_token_limit else ""
        lines.append(f"Daily token budget left: about {left:,}{limit} ({source})")
    remaining = f"Remaining load: {budget.creates_to_load:,} creates, about {budget.tokens_to_load:,} tokens"
    if budget.days_to_load is not None and budget.tokens_to_load:
        remaining += f" ({budget.days_to_load:.2f} daily budgets)"
    if budget.creates_waiting:
        remaining += f"; staged for later objects: {budget.creates_waiting:,} creates, about {budget.tokens_waiting:,} tokens"
    lines.append(remaining)
    return lines


@main.command()
@click.option("--records", default=1000, show_default=True, help="Size of the sandbox dataset.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".migration-demo"), show_default=True,
              help="MIGRATION_HOME for the demo (cleared first).")
@click.pass_context
def demo(ctx: click.Context, records: int, home: Path) -> None:
    """The whole story against the sandbox, started in-process: audit, plan, confirm, sample, verify, run, verify,
    changes made in Dynamics picked up by a delta, and a rollback that leaves Pipedrive as it was."""
    from migration_pipeline.sandbox.changes import cutover_changes
    from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig

    started = time.monotonic()
    if home.exists():
        shutil.rmtree(home)
    click.echo(f"Starting the sandbox: a Dynamics 365 and a Pipedrive simulator on 127.0.0.1 ({records:,} records)...")
    with Sandbox(SandboxConfig(records=records)) as sandbox:
        environment = {name.lower(): value for name, value in sandbox.environment().items()}
        ctx.obj["settings"] = Settings(
            _env_file=None, **environment, migration_home=home, migration_mappings_dir=home / "mappings"  # type: ignore[call-arg]
        )
        ctx.obj["brief"] = True
        pipedrive = sandbox.pipedrive_app.state.simulator
        before = live_counts(pipedrive.snapshot())

        def cutover() -> None:
            for line in cutover_changes(sandbox.dataverse_app.state.simulator):
                click.echo(f"  in Dynamics: {line}")
            ctx.invoke(delta)

        steps = [
            ("Audit: what is in Dynamics, what it will cost in Pipedrive", lambda: ctx.invoke(audit)),
            ("Plan: extract everything, propose the field, owner and stage maps", lambda: ctx.invoke(plan)),
            ("Confirm the plan (a person does this after reviewing the maps)", lambda: ctx.invoke(confirm, yes=True)),
            ("Sample: load a slice that covers every object, field, stage and owner bucket",
             lambda: ctx.invoke(sample, size=DEMO_SAMPLE_SIZE)),
            ("Verify the sample field by field", lambda: ctx.invoke(verify)),
            ("Run the full migration (the sampled records are not created again)", lambda: ctx.invoke(run)),
            ("Verify everything field by field", lambda: ctx.invoke(verify)),
            ("Cutover: the team keeps working in Dynamics; a delta pickup carries it over", cutover),
            ("Rollback: undo the migration from the audit trail", lambda: ctx.invoke(rollback, yes=True)),
        ]
        for number, (title, step) in enumerate(steps, start=1):
            step_started = time.monotonic()
            click.echo(f"\n== {number}/{len(steps)} {title}")
            step()
            click.echo(f"  ({time.monotonic() - step_started:.0f} s)")
        after = live_counts(pipedrive.snapshot())
        same = "the same as before the migration" if after == before else f"NOT as before the migration: {before}"
        click.echo("  Pipedrive now holds " + ", ".join(f"{count:,} {name}" for name, count in after.items() if count) + f": {same}.")
    click.echo(f"\nDone in {time.monotonic() - started:.0f} s. Everything it wrote is in {home}/: reports/ (scope, migration, "
               f"diff reports), the journal, and the warehouse (query it with: duckdb {home}/warehouse.duckdb).")
    if after != before:
        raise VerificationFailed("The rollback did not leave Pipedrive as it was before the migration.",
                                 hint="Run `migrate rollback` again (it resumes), then compare.")


# Records chosen per object for the demo's sample (on top of those covering every field, stage and owner bucket):
# small, so that the full run after it has most of the records still to load.
DEMO_SAMPLE_SIZE = 10


def live_counts(snapshot: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Records per Pipedrive object that are not deleted (what the demo compares before and after)."""
    names = ("organizations", "persons", "deals", "leads", "activities", "notes", "files", "products", "deal_products")
    return {name: sum(1 for record in snapshot.get(name, []) if not record.get("is_deleted")) for name in names}


if __name__ == "__main__":
    main()
