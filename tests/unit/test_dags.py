"""DAG integrity: every DAG file imports cleanly, fast, without heavy imports or I/O."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk.exceptions import ParamValidationError

from boeflow.core.settings import Settings
from boeflow.jobs.common import TaskFailed, resolve_day
from boeflow.jobs.index import batch_label

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
        "which_day", "fetch", "plan", "lote.index", "lote.enrich", "review", "build_digest",
        "approve", "publish", "deliver"}
    assert dag.get_task("plan").upstream_task_ids == {"which_day", "fetch"}
    assert dag.get_task("lote.index").upstream_task_ids == {"plan"}
    assert dag.get_task("lote.enrich").upstream_task_ids == {"plan", "lote.index"}
    # The review runs whatever the batches' outcome: a failed batch is an incidencia.
    review = dag.get_task("review")
    assert review.upstream_task_ids == {"which_day", "lote.enrich"}
    assert review.trigger_rule == "all_done"
    assert dag.get_task("approve").upstream_task_ids == {"build_digest"}
    # publish takes the approval's answer (approve.output) and the draft it answered.
    assert dag.get_task("publish").upstream_task_ids == {"which_day", "approve", "build_digest"}
    assert dag.get_task("deliver").upstream_task_ids == {"which_day", "publish"}
    assert dag.catchup is False and dag.max_active_runs == 1
    approve = dag.get_task("approve")
    assert approve.options == ["Publicar", "Rechazar"]
    assert approve.defaults == ["Rechazar"]  # nothing is published without a human
    assert set(approve.params) == {"excluir", "correcciones", "notas", "nota", "draft_hash"}
    assert approve.response_timeout.total_seconds() == 48 * 3600
    # Reviewers are told when the approval starts, and reminded at the review deadline
    # (14:00 Madrid: five hours after the 09:00 scheduled start).
    assert [type(n).__name__ for n in approve.notifiers] == ["ReviewRequestNotifier"]
    assert [(d.interval.total_seconds(), d.callback.path) for d in dag.deadline] == [
        (5 * 3600, "boeflow.airflow.notify.remind_reviewers")]
    assert [o.uri for o in dag.get_task("lote.enrich").outlets] == [
        "boeflow://boe-documents/enriched"]


def test_batches_are_mapped_named_pooled_and_retried(dagbag: object) -> None:
    dag = dagbag.dags["boe_daily"]  # type: ignore[attr-defined]
    for task_id in ("lote.index", "lote.enrich"):
        task = dag.get_task(task_id)
        # Mapped through the "lote" task group over plan's batches, one per batch.
        assert task.task_group.group_id == "lote" and task.get_needs_expansion()
        assert task.map_index_template == "{{ boe_ids }}"
        assert task.pool == "boeflow_llm"  # GPU/LLM work
    settings = Settings()
    for task_id in ("fetch", "lote.index", "deliver"):  # I/O: retried with backoff
        task = dag.get_task(task_id)
        assert task.retries == settings.airflow_retries
        assert task.retry_delay.total_seconds() == settings.airflow_retry_delay_s
        assert task.retry_exponential_backoff == 2.0
        assert task.max_retry_delay.total_seconds() == settings.airflow_retry_max_delay_s


def test_trigger_form_params(dagbag: object) -> None:
    """Spanish titles and descriptions; the JSON schema refuses what the tasks could not
    use, so a bad trigger never starts a run."""
    dag = dagbag.dags["boe_daily"]  # type: ignore[attr-defined]
    params = dag.params
    assert set(params) == {"date", "sections", "force", "languages", "max_items"}
    titles = {name: params.get_param(name).schema["title"] for name in params}
    assert titles == {"date": "Fecha del BOE", "sections": "Secciones", "force": "Forzar",
                      "languages": "Idiomas", "max_items": "Máximo de elementos"}
    assert all(params.get_param(n).description for n in params)
    sections = params.get_param("sections").schema
    assert sections["items"]["enum"] == ["1", "2A", "2B", "3", "4", "5A", "5B", "5C", "T"]
    assert sections["values_display"]["1"] == "I. Disposiciones generales"
    defaults = params.validate()
    assert defaults == {"date": None, "sections": None, "force": False,
                        "languages": ["es", "va"], "max_items": None}
    good = {"date": "2024-11-06", "sections": ["1", "5A"], "force": True,
            "languages": ["es"], "max_items": 5}
    assert {k: params.get_param(k).resolve(v) for k, v in good.items()} == good
    for name, bad in (("date", "2024-02-30"), ("date", "06/11/2024"), ("sections", ["9"]),
                      ("sections", ["1", "1"]), ("languages", ["va"]),
                      ("languages", ["fr", "es"]), ("max_items", 0), ("force", "sí")):
        with pytest.raises(ParamValidationError):
            params.get_param(name).resolve(bad)


def test_schedule_monday_to_saturday_at_nine_in_madrid(dagbag: object) -> None:
    """The next run times from the DAG's own timetable: no Sunday, 09:00 Madrid across the
    change to summer time (08:00 UTC in winter, 07:00 UTC in summer)."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    dag = dagbag.dags["boe_daily"]  # type: ignore[attr-defined]
    timetable = dag.timetable
    madrid = ZoneInfo("Europe/Madrid")
    restriction = TimeRestriction(earliest=datetime(2025, 3, 27, 12, tzinfo=UTC),
                                  latest=None, catchup=True)
    runs: list[datetime] = []
    last = None
    for _ in range(7):
        info = timetable.next_dagrun_info(last_automated_data_interval=last,
                                          restriction=restriction)
        assert info is not None
        runs.append(info.run_after)
        last = DataInterval(info.data_interval.start, info.data_interval.end)
    local = [r.astimezone(madrid) for r in runs]
    assert [r.strftime("%a %d %H:%M") for r in local] == [
        "Fri 28 09:00", "Sat 29 09:00", "Mon 31 09:00", "Tue 01 09:00", "Wed 02 09:00",
        "Thu 03 09:00", "Fri 04 09:00"]
    assert [r.astimezone(UTC).hour for r in runs[:3]] == [8, 8, 7]
    # The run's logical date is the BOE day it processes.
    assert resolve_day(None, runs[2].isoformat()) == "2025-03-31"


def test_boe_digest_is_scheduled_on_the_enrichment_asset(dagbag: object) -> None:
    dag = dagbag.dags["boe_digest"]  # type: ignore[attr-defined]
    assert {t.task_id for t in dag.tasks} == {
        "which_day", "review", "build_digest", "approve", "publish", "deliver"}
    assert "boeflow://boe-documents/enriched" in str(dag.timetable.asset_condition)


# What parsing a DAG must not import: models, clients and the local operations toolkit
# (process supervision) belong to the tasks, not to the DAG processor's parse loop.
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "elasticsearch", "psycopg",
                 "redis", "pymupdf", "spacy", "boeflow_ops.services", "boeflow.index.files",
                 "boeflow.boe.fetch")


def _airflow_glue_modules() -> list[str]:
    import boeflow.airflow

    return ["boeflow.airflow"] + [
        f"boeflow.airflow.{info.name}" for info in pkgutil.iter_modules(boeflow.airflow.__path__)]


@pytest.mark.parametrize("target", [str(DAGS / "boe_daily.py"), str(DAGS / "boe_digest.py"),
                                    *_airflow_glue_modules()])
def test_dag_files_and_airflow_glue_do_no_heavy_imports(target: str, tmp_path: Path) -> None:
    load = (f"runpy.run_path({target!r})" if target.endswith(".py")
            else f"importlib.import_module({target!r})")
    code = (
        "import importlib, json, runpy, sys\n"
        f"{load}\n"
        f"heavy = sorted({{m.split('.')[0] if not m.startswith('boeflow') else m "
        f"for m in sys.modules for h in {HEAVY_MODULES!r} if m == h or m.startswith(h + '.')}})\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_resolve_day() -> None:
    assert resolve_day("2024-11-06", "2026-11-23T09:00:00+01:00") == "2024-11-06"
    assert resolve_day(None, "2026-11-23T09:00:00+01:00") == "2026-11-23"
    # A manual run triggered at 23:30 UTC works on the day it already is in Madrid.
    assert resolve_day(None, "2026-11-23T23:30:00+00:00") == "2026-11-24"
    with pytest.raises(TaskFailed, match="not a date"):
        resolve_day("ayer", None)


def test_batch_label_fits_airflow_map_index() -> None:
    assert batch_label(["BOE-A-2024-22928"]) == "BOE-A-2024-22928"
    ids = [f"BOE-B-2024-{n}" for n in range(43000, 43025)]
    label = batch_label(ids)
    assert label.startswith("BOE-B-2024-43000, BOE-B-2024-43001") and len(label) <= 250
    assert label.endswith(f"(+{25 - label.count(',') - 1})")


def test_the_reduce_step_reads_every_shape_airflow_hands_it() -> None:
    """One mapped batch: Airflow passes its result itself; several: a lazy list of those that
    succeeded; none succeeded: None."""
    from boeflow.airflow.wiring import batch_results

    one = {"day": "2024-11-06", "ids": ["BOE-A-2024-22928"], "failed": {},
           "index": {"indexed": ["BOE-A-2024-22928"], "failed": None}}
    read = batch_results(one)
    assert [r.to_json() for r in read] == [one]
    assert read[0].index is not None and read[0].index.indexed == ["BOE-A-2024-22928"]
    assert [r.ids for r in batch_results([one, None, {**one, "ids": ["BOE-A-2024-22930"]}])
            ] == [["BOE-A-2024-22928"], ["BOE-A-2024-22930"]]
    assert batch_results(None) == []
