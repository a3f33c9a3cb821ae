"""The composed many-document day (101 real item XMLs, 1.5 KB anuncios to the 865 KB Ley
Concursal, under the sumario BOE-S-2025-COMPUESTO) end to end on the local Celery deployment
with two workers: fetch, mapped index/enrich batches spread over both workers, digest,
approval ("Publicar") and publication (tests/support/composed_day.py runs it). The figures
(stage times, per-worker model loads, generate calls, peak RSS, ES bulk throughput) are
written to composed-day.json in the test's artifacts and recorded in docs/scale.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boeflow.boe.samples import COMPOSED_SUMARIO_ID, composed_items, unpack
from boeflow.core.settings import Settings
from tests.conftest import SAMPLES
from tests.support.composed_day import run_composed_day

pytestmark = pytest.mark.e2e
WORKER_RSS_LIMIT_MIB = 3 * 1024


@pytest.mark.timeout(3600)
def test_the_composed_day_on_two_celery_workers(live_settings: Settings, smoke_models_dir: Path,
                                                tmp_path: Path) -> None:
    expected = [item.id for item in composed_items(unpack(SAMPLES, tmp_path / "root"))]
    assert len(expected) >= 100
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = run_composed_day(workers=2, smoke_models=smoke_models_dir,
                              es_url=live_settings.es_url, artifacts=artifacts)
    (artifacts / "composed-day.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"\ncomposed day: {artifacts / 'composed-day.json'}")
    assert result["state"] == "success", result["tasks"]
    digest = result["digest"]
    # Every item listed, once, and the day says it is composed.
    assert digest["published"] and sorted(digest["ids"]) == sorted(expected)
    assert len(set(digest["ids"])) == len(expected)
    assert digest["boe_numbers"] == [COMPOSED_SUMARIO_ID]
    # The mapped batches ran on both workers; each loaded its models per enrich task and
    # stayed under the memory bound.
    workers = result["per_worker"]
    assert set(workers) == {"celery-worker", "celery-worker-2"}
    for name, stats in workers.items():
        assert stats["index_batches"] + stats["enrich_batches"] >= 1, (name, workers)
        assert stats["peak_group_rss_mib"] < WORKER_RSS_LIMIT_MIB, (name, stats)
        if stats["enrich_batches"]:
            assert stats["generate_calls"].get("summarizer", 0) > 0, (name, stats)
            assert stats["model_loads"].get("summarizer", 0) <= stats["enrich_batches"]
    batches = [t for t in result["tasks"] if t["task"] == "lote.enrich"]
    assert sum(t.get("documents", 0) for t in batches) == len(expected)
    assert result["es_bulk"]["actions"] > 0
