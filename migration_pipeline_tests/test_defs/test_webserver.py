"""The Dagster UI on `workspace.yaml`: a real `dagster-webserver` process, asked through its GraphQL API.

What the webserver shows must be exactly what the code defines: every asset, every check on it,
every job, sensor and schedule. The webserver loads the code location the way a user's
`dagster dev -w workspace.yaml` does (its own process, its own imports), so this catches a
workspace that does not load, or definitions that differ from what the CLI runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import migration_pipeline
from migration_pipeline.definitions import build_definitions
from migration_pipeline.settings import Settings

PACKAGE_ROOT = Path(migration_pipeline.__file__).resolve().parents[1]
QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        jobs { name }
        sensors { name }
        schedules { name }
        assetNodes {
          assetKey { path }
          assetChecksOrError { ... on AssetChecks { checks { name } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webserver(tmp_path: Path) -> Any:
    """`dagster-webserver -w workspace.yaml` on a free loopback port, with an empty MIGRATION_HOME."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "dagster"), MIGRATION_HOME=str(tmp_path / "home"),
               MIGRATION_MAPPINGS_DIR=str(tmp_path / "mappings"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])))
    (tmp_path / "dagster").mkdir()
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-w", str(PACKAGE_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"dagster-webserver did not answer in 120 s:\n{log.read_text()[-3000:]}")
        yield url, tmp_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def graphql(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:  # the code location may still be loading after the server answers
        answer = httpx.post(f"{url}/graphql", json={"query": QUERY}, timeout=60).json()
        repositories = answer["data"]["repositoriesOrError"]
        if repositories["__typename"] == "RepositoryConnection" and repositories["nodes"]:
            [repository] = repositories["nodes"]
            return dict(repository)
        if time.monotonic() > deadline:
            pytest.fail(f"no repository in the webserver: {answer}")
        time.sleep(1)


def test_the_webserver_shows_every_asset_check_job_sensor_and_schedule(webserver: tuple[str, Path]) -> None:
    url, tmp_path = webserver
    shown = graphql(url)
    assets = {"/".join(node["assetKey"]["path"]) for node in shown["assetNodes"]}
    checks = {f"{'/'.join(node['assetKey']['path'])}:{check['name']}"
              for node in shown["assetNodes"] for check in (node["assetChecksOrError"] or {}).get("checks", [])}
    jobs = {job["name"] for job in shown["jobs"]} - {"__ASSET_JOB"}
    sensors = {sensor["name"] for sensor in shown["sensors"]}
    schedules = {schedule["name"] for schedule in shown["schedules"]}

    settings = Settings(_env_file=None, migration_home=tmp_path / "home", migration_mappings_dir=tmp_path / "mappings")  # type: ignore[call-arg]
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert assets == {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert checks == {f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys}
    assert jobs == {job.name for job in defs.resolve_all_job_defs()} - {"__ASSET_JOB"}
    assert sensors == {sensor.name for sensor in defs.sensors or []}
    assert schedules == {schedule.name for schedule in defs.schedules or []}

    # What the guides and the README name is there.
    assert {"full_migration", "sample_migration", "verify", "plan", "extract"} <= jobs
    loaded = {asset for asset in assets if asset.startswith("pipedrive/")} - {"pipedrive/custom_fields", "pipedrive/pipelines",
                                                                               "pipedrive/lead_labels"}
    assert len(loaded) == 11 and all(f"{asset}:field_diff" in checks for asset in loaded)
    assert "plan/workbook:confirmed" in checks and "plan/sample" in assets
