"""A real local Airflow deployment for end-to-end tests: `boeflow airflow up` in a private state
directory (its own PostgreSQL cluster and Redis on free loopback ports, the five Airflow
processes), the repository's DAGs, the real Elasticsearch of the test command (a private index
prefix), the recorded BOE replayed on loopback and the smoke models. Helpers talk to it the way
users and operators do: the REST API, the `airflow` CLI with the deployment's AIRFLOW_HOME, and
its metadata database."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow_ops.airflow_api import AirflowApiError, ReviewClient
from boeflow_ops.services import airflow as af
from boeflow_ops.services.common import free_port
from tests.conftest import SAMPLES
from tests.support.cli import REPO, cli_env, run_boeflow
from tests.support.generation import generation_env

DAG = "boe_daily"
FINISHED = {"success", "failed"}


def deployment_env(state: Path, data: Path, es_url: str, prefix: str, boe_url: str,
                   smoke_models: Path, **extra: str) -> dict[str, str]:
    """What `boeflow airflow up` runs with: every Airflow process (and so every task)
    inherits it. Generation is capped (the smoke models write noise; only the plumbing is
    under test) and retries are quick."""
    env = cli_env(drop=("BOEFLOW_", "AIRFLOW"), extra={
        "BOEFLOW_STATE_DIR": str(state),
        "BOEFLOW_PG_PORT": str(free_port()),
        "BOEFLOW_REDIS_PORT": str(free_port()),
        "BOEFLOW_AIRFLOW_PORT": str(free_port()),
        "BOEFLOW_PROFILE": "smoke",
        "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models),
        "BOEFLOW_DATA_DIR": str(data),
        "BOEFLOW_ES_URL": es_url,
        "BOEFLOW_ES_INDEX_PREFIX": prefix,
        "BOEFLOW_BOE_BASE_URL": boe_url,
        "BOEFLOW_BOE_RATE_LIMIT": "0",
        "BOEFLOW_BOE_MAX_ATTEMPTS": "2",
        "BOEFLOW_BOE_BACKOFF_INITIAL": "0.01",
        **generation_env(),
        "BOEFLOW_AIRFLOW_BATCH_SIZE": "1",
        "BOEFLOW_AIRFLOW_RETRY_DELAY_S": "2",
        "BOEFLOW_AIRFLOW_RETRY_MAX_DELAY_S": "10",
        # A task whose worker died is noticed (and retried) after 30 s instead of 5 min.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
    })
    env.update(extra)
    return env


def wait_dag(client: httpx.Client, dag_id: str, timeout: float = 240) -> None:
    """Wait until the dag-processor registered ``dag_id``, then unpause it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/api/v2/dags/{dag_id}").status_code == 200:
            client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            return
        time.sleep(2)
    raise AssertionError(f"the dag-processor did not register {dag_id} within {timeout}s")


def poll_run(client: httpx.Client, dag_id: str, run_id: str, timeout: float,
             interval: float = 3) -> str:
    """The state of the run once finished, or its last state when ``timeout`` is over."""
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = str(client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"])
        if state in FINISHED:
            return state
        time.sleep(interval)
    return state


@dataclass
class LocalAirflow:
    env: dict[str, str]
    boe: BoeServer
    data: Path
    prefix: str
    artifacts: Path
    _triggered: list[str] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        e = self.env
        return Settings(state_dir=Path(e["BOEFLOW_STATE_DIR"]), pg_port=int(e["BOEFLOW_PG_PORT"]),
                        redis_port=int(e["BOEFLOW_REDIS_PORT"]),
                        airflow_port=int(e["BOEFLOW_AIRFLOW_PORT"]), es_url=e["BOEFLOW_ES_URL"],
                        es_index_prefix=self.prefix, data_dir=self.data, profile="smoke",
                        smoke_models_dir=Path(e["BOEFLOW_SMOKE_MODELS_DIR"]))

    @property
    def layout(self) -> af.AirflowLayout:
        return af.AirflowLayout.from_settings(self.settings)

    # --- processes ----------------------------------------------------------------------

    def boeflow(self, *args: str, timeout: float = 600, **extra: str
                ) -> subprocess.CompletedProcess[str]:
        return run_boeflow(args, env=self.env, extra=extra, timeout=timeout, cwd=REPO)

    def up(self, **extra: str) -> None:
        """`boeflow airflow up` (starts what is not running, with ``extra`` settings)."""
        result = self.boeflow("airflow", "up", "--json", **extra)
        assert result.returncode == 0, result.stderr[-4000:]

    def airflow_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The `airflow` command against this deployment (its AIRFLOW_HOME)."""
        env = {**self.env, "AIRFLOW_HOME": str(self.layout.home),
               "AIRFLOW_CONFIG": str(self.layout.config)}
        return subprocess.run([af.airflow_executable(), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False, cwd=self.layout.home)

    def stop_component(self, component: str) -> None:
        pid = af.component_pid(self.layout, component)
        assert pid is not None, f"{component} is not running"
        af._terminate_group(pid)

    # --- REST API -----------------------------------------------------------------------

    @contextmanager
    def api(self) -> Iterator[httpx.Client]:
        with af.api_client(self.settings) as client:
            yield client

    def wait_dag(self, timeout: float = 240) -> None:
        with self.api() as client:
            wait_dag(client, DAG, timeout)

    def trigger(self, conf: dict[str, Any]) -> str:
        with self.api() as client:
            response = client.post(f"/api/v2/dags/{DAG}/dagRuns",
                                   json={"logical_date": None, "conf": conf})
        assert response.status_code == 200, response.text
        return str(response.json()["dag_run_id"])

    def runs(self) -> list[dict[str, Any]]:
        with self.api() as client:
            response = client.get(f"/api/v2/dags/{DAG}/dagRuns",
                                  params={"limit": 100, "order_by": "run_after"})
        assert response.status_code == 200, response.text
        return list(response.json()["dag_runs"])

    def run(self, run_id: str) -> dict[str, Any]:
        with self.api() as client:
            return dict(client.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}").json())

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        with self.api() as client:
            response = client.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances",
                                  params={"limit": 200})
        assert response.status_code == 200, response.text
        return list(response.json()["task_instances"])

    def wait_run(self, run_id: str, timeout: float = 900) -> str:
        with self.api() as client:
            state = poll_run(client, DAG, run_id, timeout)
        if state in FINISHED:
            return state
        raise AssertionError(f"{run_id} still {state} after {timeout}s: "
                             f"{self.describe(run_id)}")

    def fail_unfinished(self) -> list[str]:
        """Mark every run that has not finished as failed (the DAG allows one active run, so a
        run left waiting by a failed test would hold back the next test's)."""
        left = [str(r["dag_run_id"]) for r in self.runs() if r["state"] not in FINISHED]
        with self.api() as client:
            for run_id in left:
                response = client.patch(f"/api/v2/dags/{DAG}/dagRuns/{run_id}",
                                        json={"state": "failed"})
                assert response.status_code == 200, response.text
        return left

    def describe(self, run_id: str) -> str:
        return "; ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}"
                         for t in self.task_instances(run_id))

    def reviewer(self) -> ReviewClient:
        """The admin, logged in as a reviewer (the client the demo answers with)."""
        return ReviewClient(self.settings.airflow_url, self.settings.airflow_admin_user,
                            af.admin_password(self.settings))

    def hitl(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Approval requests not answered yet (of one run, or all)."""
        return self.reviewer().pending(DAG, run_id or "~")

    def wait_hitl(self, run_id: str, timeout: float = 900) -> dict[str, Any]:
        try:
            return self.reviewer().wait_pending(
                DAG, timeout, lambda: self.run(run_id)["state"] not in FINISHED,
                run_id=run_id, interval=3)
        except AirflowApiError as exc:
            raise AssertionError(f"{run_id}: {exc}: {self.describe(run_id)}") from None

    def answer(self, detail: dict[str, Any], option: str, params: dict[str, Any]) -> None:
        self.reviewer().answer(detail, option, params)

    # --- metadata database ------------------------------------------------------------

    def metadata(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of Airflow's own metadata database (what the scheduler and executor wrote)."""
        import psycopg
        from psycopg.rows import dict_row

        s = self.settings
        with psycopg.connect(host=s.pg_host, port=s.pg_port, user=s.pg_user,
                             password=s.pg_password.get_secret_value(),
                             dbname=s.pg_airflow_database, row_factory=dict_row) as conn:
            return list(conn.execute(sql, params).fetchall())

    def worker_log(self) -> str:
        return self.layout.logfile("celery-worker").read_text(errors="replace")


@contextmanager
def running_deployment(live_settings: Settings, smoke_models_dir: Path, root: Path,
                       prefix: str, *, name: str, label: str,
                       before_stop: Callable[[LocalAirflow], None] | None = None,
                       **extra: str) -> Iterator[LocalAirflow]:
    """A started deployment (`boeflow airflow up`, `boeflow db upgrade`, the DAG registered)
    on the recorded BOE, with ``extra`` settings; stopped afterwards, its process logs kept
    in ``root / "artifacts"``. Its services' own state lives outside pytest's base directory
    (PostgreSQL runs as an unprivileged user who must reach it, and a pytest starting
    elsewhere on the machine resets that directory to 0700); the Elasticsearch indices of
    ``prefix`` are dropped first. ``before_stop`` runs before the services stop."""
    state = Path(tempfile.mkdtemp(prefix=f"boeflow-{name}-"))
    client = get_client(live_settings)
    try:
        drop_indices(client, IndexNames(prefix))
    finally:
        client.close()
    with BoeServer(SAMPLES) as boe:
        env = deployment_env(state / "state", root / "data", live_settings.es_url, prefix,
                             boe.url, smoke_models_dir, **extra)
        artifacts = root / "artifacts"
        artifacts.mkdir()
        deployment = LocalAirflow(env=env, boe=boe, data=root / "data", prefix=prefix,
                                  artifacts=artifacts)
        try:
            deployment.up()
            upgraded = deployment.boeflow("db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr[-2000:]
            deployment.wait_dag()
            yield deployment
        finally:
            print(f"\n{label} artifacts: {artifacts}")
            if before_stop is not None:
                before_stop(deployment)
            deployment.boeflow("services", "stop", timeout=240)
            logs = state / "state" / "airflow" / "process-logs"
            if logs.is_dir():
                shutil.copytree(logs, artifacts / "process-logs", dirs_exist_ok=True)
            shutil.rmtree(state, ignore_errors=True)


def celery_ran(deployment: LocalAirflow, run_id: str) -> list[dict[str, Any]]:
    """Task instances of ``run_id`` that ran, each with whether the Celery worker's log shows
    its Celery task (the executor's external id) received and finished."""
    rows = deployment.metadata(
        """SELECT task_id, map_index, try_number, state, hostname, queue, executor,
                  external_executor_id FROM task_instance
           WHERE dag_id = %s AND run_id = %s AND start_date IS NOT NULL""", DAG, run_id)
    log = deployment.worker_log()
    for row in rows:
        celery_id = row["external_executor_id"]
        row["worker_received"] = bool(celery_id) and \
            f"execute_workload[{celery_id}] received" in log
    return rows


def dump(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")
