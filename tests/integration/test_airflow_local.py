"""The local Airflow deployment for real: `boeflow airflow up` starts PostgreSQL, Redis and
the five Airflow processes (api-server, scheduler, dag-processor, triggerer, Celery worker)
in a private state directory on free loopback ports; the test checks their health, runs a
DAG whose task must execute on the Celery worker and read boeflow's settings from Airflow
Connections (one from an AIRFLOW_CONN_* variable, one from the metadata database, created
through the REST API), checks the task log masks the secrets, and stops everything."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boeflow.core.settings import Settings
from boeflow_ops.services import airflow as af
from boeflow_ops.services.common import free_port
from tests.support.cli import REPO, cli_env, run_boeflow
from tests.support.local_airflow import poll_run, wait_dag

pytestmark = pytest.mark.integration

ES_SECRET = "es-Secret-7f3a9c"
LLM_KEY = "llm-Key-81b2e4d0"


@pytest.fixture(scope="module")
def deployment() -> Iterator[dict[str, str]]:
    # Outside pytest's base directory: PostgreSQL runs as an unprivileged user who must reach
    # its data, and any pytest starting on the machine resets that directory to 0700.
    root = Path(tempfile.mkdtemp(prefix="boeflow-airflow-local-"))
    state = root / "state"
    env = cli_env(drop=("BOEFLOW_", "AIRFLOW"), extra={
        "BOEFLOW_STATE_DIR": str(state),
        "BOEFLOW_PG_PORT": str(free_port()),
        "BOEFLOW_REDIS_PORT": str(free_port()),
        "BOEFLOW_AIRFLOW_PORT": str(free_port()),
        "BOEFLOW_AIRFLOW_DAGS_DIR": str(REPO / "tests" / "airflow_dags"),
        # A connection from the environment, as a deployment's secrets would provide it.
        "AIRFLOW_CONN_BOEFLOW_ELASTICSEARCH": json.dumps({
            "conn_type": "elasticsearch", "host": "es.internal", "port": 9243,
            "schema": "https", "login": "elastic", "password": ES_SECRET}),
    })
    try:
        yield env
    finally:
        run_boeflow(["services", "stop"], env=env, timeout=180, cwd=REPO)
        shutil.rmtree(root, ignore_errors=True)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(state_dir=Path(env["BOEFLOW_STATE_DIR"]),
                    pg_port=int(env["BOEFLOW_PG_PORT"]),
                    redis_port=int(env["BOEFLOW_REDIS_PORT"]),
                    airflow_port=int(env["BOEFLOW_AIRFLOW_PORT"]))


def _pids(settings: Settings) -> dict[str, int | None]:
    layout = af.AirflowLayout.from_settings(settings)
    return {c: af.component_pid(layout, c) for c in af.COMPONENTS}


def test_up_starts_every_component_healthy(deployment: dict[str, str]) -> None:
    result = run_boeflow(["airflow", "up", "--json"], env=deployment, timeout=420, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    statuses = {s["name"]: s for s in json.loads(result.stdout)}
    expected = {"postgresql", "redis", "airflow-api-server", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}
    assert set(statuses) == expected
    assert all(s["healthy"] for s in statuses.values()), statuses
    assert statuses["airflow-worker"]["detail"] == "pong"
    assert "heartbeat" in statuses["airflow-scheduler"]["detail"]

    settings = _settings(deployment)
    layout = af.AirflowLayout.from_settings(settings)
    # The UI URL and the password file are printed; the password itself never is.
    assert settings.airflow_url in result.stderr
    assert str(layout.password_file) in result.stderr
    assert stat.S_IMODE(layout.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.config.stat().st_mode) == 0o600
    password = af.admin_password(settings)
    assert len(password) >= 16
    assert password not in result.stdout + result.stderr
    for log in layout.logs.glob("*.log"):
        assert password not in log.read_text(errors="replace"), log

    # Separate processes, each its own Airflow component.
    pids = _pids(settings)
    assert all(pids.values()) and len(set(pids.values())) == len(af.COMPONENTS), pids
    # Loopback only: every listening socket of these processes is on 127.0.0.1.
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True,
                               check=True).stdout
    ours = [line for line in listening.splitlines()
            if any(f"pid={pid}," in line for pid in _group_pids(pids.values()))]
    assert ours, listening
    for line in ours:
        assert line.split()[3].startswith("127.0.0.1:"), line

    # The LLM pool exists with the configured size.
    with af.api_client(settings) as client:
        pool = client.get(f"/api/v2/pools/{af.LLM_POOL}").json()
    assert pool["slots"] == settings.airflow_llm_pool_slots


def _group_pids(leaders: Any) -> set[int]:
    groups = {int(p) for p in leaders if p}
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in groups:
                found.add(int(entry.name))
    return found


def test_up_again_is_a_no_op(deployment: dict[str, str]) -> None:
    settings = _settings(deployment)
    before = _pids(settings)
    started = time.monotonic()
    result = run_boeflow(["services", "start", "--only", "airflow"], env=deployment,
                         timeout=420, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _pids(settings) == before
    assert time.monotonic() - started < 60


def test_task_runs_on_the_celery_worker_with_connections(deployment: dict[str, str]) -> None:
    settings = _settings(deployment)
    worker_pid = _pids(settings)["celery-worker"]
    with af.api_client(settings) as client:
        # A second connection, stored in the metadata database through the REST API.
        client.delete("/api/v2/connections/boeflow_llm")
        created = client.post("/api/v2/connections", json={
            "connection_id": "boeflow_llm", "conn_type": "http", "host": "127.0.0.1",
            "port": 8011, "schema": "http", "password": LLM_KEY,
            "extra": json.dumps({"model": "alia"})})
        assert created.status_code == 201, created.text
        wait_dag(client, "boeflow_probe", timeout=180)
        run = client.post("/api/v2/dags/boeflow_probe/dagRuns",
                          json={"logical_date": None}).json()
        run_id = run["dag_run_id"]
        state = poll_run(client, "boeflow_probe", run_id, timeout=240, interval=2)
        ti = client.get(f"/api/v2/dags/boeflow_probe/dagRuns/{run_id}/taskInstances/probe"
                        ).json()
        xcom = client.get(f"/api/v2/dags/boeflow_probe/dagRuns/{run_id}/taskInstances/probe/"
                          "xcomEntries/return_value", params={"deserialize": True}).json()
        log = client.get(f"/api/v2/dags/boeflow_probe/dagRuns/{run_id}/taskInstances/probe/"
                         f"logs/{ti['try_number']}", headers={"Accept": "application/json"})
    assert state == "success", ti
    value = xcom["value"]
    value = json.loads(value) if isinstance(value, str) else value
    # It ran in a process forked by our Celery worker, on this host.
    assert worker_pid in value["ancestors"], (worker_pid, value["ancestors"])
    assert ti["hostname"] == value["hostname"]
    # Settings from the connections (env var and metadata DB), the rest from BOEFLOW_*.
    assert value["in_airflow_task"] is True
    assert value["es_url"] == "https://***@es.internal:9243"
    assert value["gen_backend"] == "http"
    assert value["gen_http_url"] == "http://127.0.0.1:8011"
    assert value["gen_http_model"] == "alia"
    assert value["pg"][1] == int(deployment["BOEFLOW_PG_PORT"])
    assert value["boe_base_url"] == "https://www.boe.es"
    # Secrets never appear in the task log; the lines that printed them show ***.
    text = log.text
    assert "elasticsearch at" in text and "llm key" in text, text[-2000:]
    assert ES_SECRET not in text and LLM_KEY not in text
    assert "***" in text


def test_down_stops_every_process(deployment: dict[str, str]) -> None:
    settings = _settings(deployment)
    groups = _group_pids(_pids(settings).values())
    assert groups
    result = run_boeflow(["airflow", "down"], env=deployment, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "airflow: stopped" in result.stderr
    alive = [pid for pid in groups if Path(f"/proc/{pid}").exists()
             and (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")]
    assert alive == []
    status = run_boeflow(["airflow", "status", "--json"], env=deployment, timeout=420, cwd=REPO)
    assert status.returncode == 1
    states = {s["name"]: s for s in json.loads(status.stdout)}
    assert not any(states[n]["running"] for n in states if n.startswith("airflow-"))
    assert states["redis"]["healthy"] and states["postgresql"]["healthy"]
