"""DAG integrity: every DAG file imports cleanly, fast, without heavy imports or I/O."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boeflow.daily import TaskFailed, resolve_day

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> object:
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_import_without_errors(dagbag: object) -> None:
    assert dagbag.import_errors == {}  # type: ignore[attr-defined]
    assert {"boe_daily", "boe_digest"} <= set(dagbag.dags)  # type: ignore[attr-defined]


def test_boe_daily_shape(dagbag: object) -> None:
    dag = dagbag.dags["boe_daily"]  # type: ignore[attr-defined]
    assert {t.task_id for t in dag.tasks} == {
        "which_day", "fetch", "index", "enrich", "review", "build_digest", "approve",
        "publish", "deliver"}
    assert dag.get_task("index").upstream_task_ids == {"which_day", "fetch"}
    assert dag.get_task("enrich").upstream_task_ids == {"which_day", "index"}
    assert dag.get_task("review").upstream_task_ids == {"which_day", "enrich"}
    assert dag.get_task("approve").upstream_task_ids == {"build_digest"}
    assert dag.get_task("publish").upstream_task_ids == {"which_day", "approve"}
    assert dag.get_task("deliver").upstream_task_ids == {"which_day", "publish"}
    assert dag.catchup is False
    assert "date" in dag.params
    approve = dag.get_task("approve")
    assert approve.options == ["Publicar", "Rechazar"]
    assert approve.defaults == ["Rechazar"]  # nothing is published without a human
    assert set(approve.params) == {"excluir", "correcciones", "notas", "nota"}
    assert approve.response_timeout.total_seconds() == 48 * 3600
    assert [o.uri for o in dag.get_task("enrich").outlets] == ["boeflow://boe-documents/enriched"]


def test_boe_digest_is_scheduled_on_the_enrichment_asset(dagbag: object) -> None:
    dag = dagbag.dags["boe_digest"]  # type: ignore[attr-defined]
    assert {t.task_id for t in dag.tasks} == {
        "which_day", "review", "build_digest", "approve", "publish", "deliver"}
    assert "boeflow://boe-documents/enriched" in str(dag.timetable.asset_condition)


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
