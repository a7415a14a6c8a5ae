"""`migrate run` refuses an unconfirmed or edited plan, from the CLI, before touching anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from migration_pipeline.cli import main
from migration_pipeline.errors import PlanNotConfirmed
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline_tests.conftest import settings_for


def test_run_refuses_until_confirmed_and_again_after_an_edit(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(records=200, seed=3)
    settings = settings_for(sandbox, tmp_path)
    runner = CliRunner()

    def migrate(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, list(args), obj={"settings": settings})
        return result.exit_code, result.output

    assert migrate("plan")[0] == 0
    code, output = migrate("run")
    assert code == PlanNotConfirmed.exit_code and "migrate confirm" in output
    assert migrate("confirm", "--yes")[0] == 0
    mapping = settings.migration_mappings_dir / "organizations.yaml"
    edited = mapping.read_text().replace("max_length: 255", "max_length: 200", 1)
    assert edited != mapping.read_text()
    mapping.write_text(edited)
    code, output = migrate("run")
    assert code == PlanNotConfirmed.exit_code and "organizations.yaml" in output
    assert sandbox.pipedrive_app.state.simulator.usage()["tokens_used"] < 200  # nothing was loaded
