"""The composed many-document day (``boeflow.boe.samples``: 101 real item XMLs under the
sumario ``BOE-S-2025-COMPUESTO`` of 2025-07-06) through the local Celery deployment.

``run_composed_day`` starts ``boeflow airflow up`` in a private state directory with
``workers`` Celery workers (one task slot each, the ``boeflow_llm`` pool sized to the
workers), the real Elasticsearch under a private prefix, the samples replayed on loopback and
the smoke models; triggers ``boe_daily`` for the day, approves the digest as a reviewer
would ("Publicar"), waits for the publication and returns what docs/scale.md records: wall
time per stage, the mapped batches each worker ran, generate calls and model loads per task
and per worker, peak RSS per worker (its whole process group, sampled every second, and
each task process's own peak), Elasticsearch bulk throughput, and the published digest.

Run it by hand (services running; the e2e test and ``benchmarks/day.py --only wall`` use
it)::

    flock /tmp/boeflow-heavy.lock python -m tests.support.composed_day --workers 2 \\
        --json /tmp/composed-day.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from boeflow.boe.replay import BoeServer
from boeflow.boe.samples import COMPOSED_DAY, replay_root
from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow_ops.services import airflow as af
from boeflow_ops.services.common import processes
from tests.support.local_airflow import DAG, LocalAirflow, deployment_env

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "boe"
PAGE = 4096


class RssSampler(threading.Thread):
    """Peak RSS of each worker's process group (the Celery worker, its pool and the task
    processes it starts), sampled every ``interval`` seconds."""

    def __init__(self, layout: af.AirflowLayout, workers: list[str], interval: float = 1.0):
        super().__init__(daemon=True)
        self.layout, self.workers, self.interval = layout, workers, interval
        self.peak_group: dict[str, float] = defaultdict(float)
        self.peak_process: dict[str, float] = defaultdict(float)
        self.stop = threading.Event()

    @staticmethod
    def _rss_mib(pid: int) -> float:
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return 0.0
        return pages * PAGE / 2**20

    def run(self) -> None:
        while not self.stop.is_set():
            table = processes()
            for worker in self.workers:
                leader = af.component_pid(self.layout, worker)
                if leader is None:
                    continue
                sizes = [self._rss_mib(pid) for pid, info in table.items()
                         if info.pgrp == leader]
                self.peak_group[worker] = max(self.peak_group[worker], sum(sizes))
                self.peak_process[worker] = max(self.peak_process[worker], max(sizes, default=0))
            self.stop.wait(self.interval)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def stage_times(instances: list[dict[str, Any]]) -> dict[str, float]:
    """Wall time of each task (mapped ones: first start to last end), in run order."""
    spans: dict[str, list[datetime]] = {}
    for ti in sorted(instances, key=lambda t: t.get("start_date") or ""):
        start, end = _when(ti.get("start_date")), _when(ti.get("end_date"))
        if start is None or end is None:
            continue
        span = spans.setdefault(ti["task_id"], [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    return {task: round((end - start).total_seconds(), 1) for task, (start, end) in spans.items()}


def _xcom(deployment: LocalAirflow, run_id: str, task_id: str, map_index: int) -> Any:
    with deployment.api() as client:
        response = client.get(
            f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
            "return_value", params={"map_index": map_index})
    if response.status_code != 200:
        return None
    value = response.json().get("value")  # the stored JSON (a string or already parsed)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _worker_of(logs: dict[str, str], celery_id: str | None) -> str | None:
    if not celery_id:
        return None
    marker = f"execute_workload[{celery_id}] received"
    return next((worker for worker, text in logs.items() if marker in text), None)


def run_composed_day(*, workers: int, smoke_models: Path, es_url: str, artifacts: Path,
                     batch_size: int = 13, timeout: float = 3600) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="boeflow-composed-"))
    prefix = f"composed-{workers}w-"
    with get_client(Settings(es_url=es_url)) as client:
        drop_indices(client, IndexNames(prefix))
    root = replay_root(SAMPLES, state / "replay")
    data = state / "data"
    result: dict[str, Any] = {"workers": workers, "batch_size": batch_size,
                              "day": COMPOSED_DAY.isoformat()}
    try:
        with BoeServer(root) as boe:
            env = deployment_env(
                state / "state", data, es_url, prefix, boe.url, smoke_models,
                BOEFLOW_AIRFLOW_WORKERS=str(workers),
                BOEFLOW_AIRFLOW_WORKER_CONCURRENCY="1",
                BOEFLOW_AIRFLOW_LLM_POOL_SLOTS=str(workers),
                BOEFLOW_AIRFLOW_BATCH_SIZE=str(batch_size))
            deployment = LocalAirflow(env=env, boe=boe, data=data, prefix=prefix,
                                      artifacts=artifacts)
            names = [c for c in af.components(deployment.settings.model_copy(
                update={"airflow_workers": workers})) if c.startswith(af.WORKER)]
            try:
                deployment.up()
                upgraded = deployment.boeflow("db", "upgrade")
                assert upgraded.returncode == 0, upgraded.stderr[-2000:]
                deployment.wait_dag()
                sampler = RssSampler(deployment.layout, names)
                sampler.start()
                started = time.monotonic()
                run_id = deployment.trigger({"date": COMPOSED_DAY.isoformat()})
                detail = deployment.wait_hitl(run_id, timeout=timeout)
                asked = time.monotonic()
                deployment.answer(detail, "Publicar", {"excluir": [], "correcciones": {},
                                                       "notas": {}, "nota": "composed day"})
                final = deployment.wait_run(run_id, timeout=timeout)
                result["wall_s"] = round(time.monotonic() - started, 1)
                result["until_approval_s"] = round(asked - started, 1)
                sampler.stop.set()
                sampler.join(timeout=5)
                result["state"] = final
                result.update(_describe(deployment, run_id, names, sampler))
            finally:
                deployment.boeflow("services", "stop", timeout=240)
                logs = state / "state" / "airflow" / "process-logs"
                if logs.is_dir():
                    shutil.copytree(logs, artifacts / f"process-logs-{workers}w",
                                    dirs_exist_ok=True)
    finally:
        with get_client(Settings(es_url=es_url)) as client:
            drop_indices(client, IndexNames(prefix))
        shutil.rmtree(state, ignore_errors=True)
    return result


def _describe(deployment: LocalAirflow, run_id: str, workers: list[str],
              sampler: RssSampler) -> dict[str, Any]:
    instances = deployment.task_instances(run_id)
    rows = deployment.metadata(
        """SELECT task_id, map_index, external_executor_id FROM task_instance
           WHERE dag_id = %s AND run_id = %s AND start_date IS NOT NULL""", DAG, run_id)
    logs = {w: deployment.layout.logfile(w).read_text(errors="replace") for w in workers}
    ran_on = {(r["task_id"], r["map_index"]): _worker_of(logs, r["external_executor_id"])
              for r in rows}
    per_worker: dict[str, dict[str, Any]] = {
        w: {"tasks": 0, "index_batches": 0, "enrich_batches": 0, "model_loads": Counter(),
            "generate_calls": Counter(), "task_peak_rss_mib": 0.0} for w in workers}
    bulk_s = 0.0
    bulk_actions = chunks = 0
    tasks = []
    for ti in instances:
        key = (ti["task_id"], ti["map_index"])
        worker = ran_on.get(key)
        row = {"task": ti["task_id"], "map_index": ti["map_index"], "state": ti["state"],
               "worker": worker, "seconds": ti.get("duration")}
        if worker:
            per_worker[worker]["tasks"] += 1
        if ti["task_id"] in ("lote.index", "lote.enrich"):
            value = _xcom(deployment, run_id, ti["task_id"], ti["map_index"])
            if isinstance(value, dict):
                row["peak_rss_mib"] = value.get("peak_rss_mib")
                row["documents"] = len(value.get("ids") or [])
                if worker:
                    stats = per_worker[worker]
                    stats["task_peak_rss_mib"] = max(stats["task_peak_rss_mib"],
                                                     float(value.get("peak_rss_mib") or 0))
                if ti["task_id"] == "lote.index":
                    bulk_s += float(value.get("bulk_seconds") or 0)
                    bulk_actions += int(value.get("bulk_actions") or 0)
                    chunks += int(value.get("chunks") or 0)
                    row["chunks"] = value.get("chunks")
                    if worker:
                        per_worker[worker]["index_batches"] += 1
                else:
                    row["model_loads"] = value.get("model_loads")
                    row["generate_calls"] = value.get("generate_calls")
                    if worker:
                        per_worker[worker]["enrich_batches"] += 1
                        per_worker[worker]["model_loads"].update(value.get("model_loads") or {})
                        per_worker[worker]["generate_calls"].update(
                            value.get("generate_calls") or {})
        tasks.append(row)
    for worker, stats in per_worker.items():
        stats["model_loads"] = dict(stats["model_loads"])
        stats["generate_calls"] = dict(stats["generate_calls"])
        stats["peak_group_rss_mib"] = round(sampler.peak_group.get(worker, 0.0), 1)
        stats["peak_process_rss_mib"] = round(sampler.peak_process.get(worker, 0.0), 1)
    digest = _published_digest(deployment)
    return {"run_id": run_id, "stages": stage_times(instances), "tasks": tasks,
            "per_worker": per_worker,
            "es_bulk": {"seconds": round(bulk_s, 2), "actions": bulk_actions, "chunks": chunks,
                        "actions_per_s": round(bulk_actions / bulk_s, 1) if bulk_s else None},
            "digest": digest}


def _published_digest(deployment: LocalAirflow) -> dict[str, Any]:
    from boeflow.boe.store import RawStore, store_url
    from boeflow.digest.publish import read_digest

    settings = deployment.settings
    digest = read_digest(RawStore(store_url(settings)), COMPOSED_DAY, draft=False)
    if digest is None:
        return {"published": False}
    items = digest.all_items()
    return {"published": digest.status == "published", "items": len(items),
            "ids": [i.boe_id for i in items], "boe_numbers": digest.header.boe_numbers,
            "summarised": digest.header.summarised, "incidencias": len(digest.incidencias),
            "sections": [s.code for s in digest.sections]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=13)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--artifacts", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings()
    smoke = Path(os.environ.get("BOEFLOW_SMOKE_MODELS_DIR") or settings.smoke_models_dir)
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="boeflow-composed-artifacts-"))
    result = run_composed_day(workers=args.workers, smoke_models=smoke, es_url=settings.es_url,
                              artifacts=artifacts, batch_size=args.batch_size)
    args.json.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v for k, v in result.items() if k not in ("tasks", "digest")},
                     indent=1, default=str))


if __name__ == "__main__":
    main()
