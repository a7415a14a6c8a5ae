"""The `migrate` command.

Every subcommand exits 0 on success. A failure the user can act on (a `MigrationError`)
prints one paragraph, what happened and what to do, and exits with that error's code; any
other exception is a bug: one line unless `--debug`, which keeps the traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from migration_pipeline.errors import MigrationError

F = TypeVar("F", bound=Callable[..., Any])


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
def main(debug: bool) -> None:
    """Move a CRM from Dynamics 365 into Pipedrive, field by field, with verification and rollback."""


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


if __name__ == "__main__":
    main()
