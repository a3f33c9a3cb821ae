"""DAG integrity: every DAG file imports cleanly, fast, without heavy imports or I/O."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boeflow.airflow.tasks import TaskFailed, resolve_day

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> object:
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_import_without_errors(dagbag: object) -> None:
    assert dagbag.import_errors == {}  # type: ignore[attr-defined]
    assert "boe_daily" in dagbag.dags  # type: ignore[attr-defined]


def test_boe_daily_shape(dagbag: object) -> None:
    dag = dagbag.dags["boe_daily"]  # type: ignore[attr-defined]
    assert {t.task_id for t in dag.tasks} == {"which_day", "fetch", "index", "enrich"}
    assert dag.get_task("index").upstream_task_ids == {"which_day", "fetch"}
    assert dag.get_task("enrich").upstream_task_ids == {"which_day", "index"}
    assert dag.catchup is False
    assert "date" in dag.params


def test_dag_top_level_does_no_heavy_imports(tmp_path: Path) -> None:
    code = (
        "import runpy, sys, json\n"
        f"runpy.run_path({str(DAGS / 'boe_daily.py')!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'elasticsearch',"
        " 'pymupdf', 'spacy', 'boeflow.pipeline', 'boeflow.boe.fetch') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_resolve_day() -> None:
    assert resolve_day("2024-11-06", "2026-11-23T09:00:00+01:00") == "2024-11-06"
    assert resolve_day(None, "2026-11-23T09:00:00+01:00") == "2026-11-23"
    with pytest.raises(TaskFailed, match="not a date"):
        resolve_day("ayer", None)
