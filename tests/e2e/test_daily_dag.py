"""The daily DAG end to end: Airflow (metadata in the real PostgreSQL) runs boe_daily for
2024-11-06 against the recorded BOE replayed on loopback, into the real Elasticsearch, with
the smoke embedder. A second run of the finished day does no downloads and no model work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boeflow.boe.replay import BoeServer
from boeflow.config import Settings
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from tests.conftest import SAMPLES

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PREFIX = "e2e-dag-"


def _airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(airflow), *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


def test_boe_daily_dag_runs_a_replayed_day(live_settings: Settings, smoke_models_dir: Path,
                                          tmp_path: Path) -> None:
    client = get_client(live_settings)
    drop_indices(client, IndexNames(PREFIX))  # wildcard deletes are refused by the cluster
    with BoeServer(SAMPLES) as server:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": live_settings.airflow_sql_alchemy_conn,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "BOEFLOW_PROFILE": "smoke",
            "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models_dir),
            "BOEFLOW_DATA_DIR": str(tmp_path / "data"),
            "BOEFLOW_ES_URL": live_settings.es_url,
            "BOEFLOW_ES_INDEX_PREFIX": PREFIX,
            "BOEFLOW_BOE_BASE_URL": server.url,
            "BOEFLOW_BOE_RATE_LIMIT": "0",
            "BOEFLOW_BOE_MAX_ATTEMPTS": "2",
            "BOEFLOW_BOE_BACKOFF_INITIAL": "0.01",
        }
        migrated = _airflow(["db", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        first = _airflow(["dags", "test", "boe_daily", "2024-11-06"], env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        manifest = json.loads((tmp_path / "data" / "raw" / "boe" / "2024" / "11" / "06" /
                               "manifest.json").read_text(encoding="utf-8"))
        assert len(manifest["items"]) == 238
        documents = client.search(index=f"{PREFIX}boe-documents", size=50,
                                  query={"match_all": {}})["hits"]["hits"]
        assert [d["_id"] for d in documents] == ["BOE-A-2024-22928"]
        record = documents[0]["_source"]
        indexed_at = record["indexed_at"]
        # The smoke summariser writes gibberish: the review must flag it for a human.
        assert record["review_status"] in ("needs_attention", "failed")
        assert record["needs_attention"] is True
        assert record["review_reasons"]

        server.clear_log()
        second = _airflow(["dags", "test", "boe_daily", "2024-11-06"], env)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        downloads = [r for r in server.requests() if r.status == 200]
        assert downloads == [], [r.path for r in downloads]
        again = client.get(index=f"{PREFIX}boe-documents", id="BOE-A-2024-22928")
        assert again["_source"]["indexed_at"] == indexed_at  # skipped: no model work
        assert again["_source"]["review_reasons"] == record["review_reasons"]
        runs = _airflow(["dags", "list-runs", "boe_daily", "--output", "json"], env)
        assert runs.returncode == 0, runs.stderr[-2000:]
        listing = next(line for line in reversed(runs.stdout.splitlines())
                       if line.startswith("[{"))
        states = {run["state"] for run in json.loads(listing)
                  if run["logical_date"].startswith("2024-11-06")}
        assert states == {"success"}, states
