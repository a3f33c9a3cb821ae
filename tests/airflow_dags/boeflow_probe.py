"""A tiny DAG for the local deployment's integration test (tests/integration/
test_airflow_local.py): its task reports where it ran (host and process ancestry, to prove
the Celery worker ran it) and the settings it got from Airflow Connections, and prints two
secrets on purpose so the test can check that the task log masks them."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import dag, task


def _ancestors() -> list[int]:
    pids: list[int] = []
    pid = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[1]
    while pid not in ("0", "1") and len(pids) < 20:
        pids.append(int(pid))
        try:
            pid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            break
    return pids


@dag(dag_id="boeflow_probe", schedule=None, catchup=False,
     start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["boeflow-test"])
def boeflow_probe() -> None:
    @task
    def probe() -> dict[str, object]:
        from airflow.utils.net import get_hostname  # what Airflow records on the task

        from boeflow.airflow.connections import in_airflow_task, task_settings
        from boeflow.core.settings import redact_url

        settings = task_settings()
        print(f"elasticsearch at {settings.es_url}")  # the log must show *** for the password
        key = settings.gen_http_api_key
        print(f"llm key {key.get_secret_value() if key else None}")
        return {
            "hostname": get_hostname(),
            "ancestors": _ancestors(),
            "in_airflow_task": in_airflow_task(),
            "es_url": redact_url(settings.es_url),
            "pg": [settings.pg_host, settings.pg_port, settings.pg_user, settings.pg_database],
            "boe_base_url": settings.boe_base_url,
            "gen_backend": settings.gen_backend,
            "gen_http_url": settings.gen_http_url,
            "gen_http_model": settings.gen_http_model,
        }

    probe()


boeflow_probe()
