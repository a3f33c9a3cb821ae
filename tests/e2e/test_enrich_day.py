"""The enrich step over the two demo days, as the CLI and the DAG run it: real BOE samples
replayed on loopback, fetched into the raw store, indexed into the real Elasticsearch, then
``boeflow enrich --date 2024-11-06 --to 2024-11-13 --json`` in a fresh process.

Each model is loaded exactly once for the two days (the backends are shared and lazy; the
smoke profile translates with Apertium, so only the summarizer is a model), and a rerun of
the same days loads none, generates nothing and translates nothing: every record and every
Valencian title comes from the store. The ``boe-documents`` records carry the Spanish
summary and its full Valencian translation in the same structure, with a review per
translated field.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.enrich.schema import SUMMARY_FIELDS
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow.review import check_language
from tests.conftest import SAMPLES
from tests.support.cli import run_boeflow
from tests.support.generation import generation_env

pytestmark = pytest.mark.e2e
PREFIX = "e2e-enrich-"
DAYS = ("2024-11-06", "2024-11-13")
# every recorded document of the two days (issue 20 added BOE-A-2024-23622)
EXPECTED = {"BOE-A-2024-22928", "BOE-A-2024-23543", "BOE-A-2024-23620", "BOE-A-2024-23622"}
SMALL = generation_env(gen_batch_size=8)


def _fetch(day: str, settings: Settings) -> None:
    """Fetch one replayed day into the raw store (the fetch stage alone, no state DB)."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import RawStore, store_url

    with BoeClient(ClientConfig.from_settings(settings)) as client:
        Fetcher(client, RawStore(store_url(settings)), FetchOptions.from_settings(settings)
                ).fetch_day(date.fromisoformat(day))


def _enrich(env: dict[str, str]) -> list[dict[str, Any]]:
    done = run_boeflow(["enrich", "--date", DAYS[0], "--to", DAYS[1], "--json"], env=env,
                       script=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Loading weights" not in done.stderr
    assert "Token indices sequence length" not in done.stderr
    reports: list[dict[str, Any]] = json.loads(done.stdout)
    return reports


def _loads(reports: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for report in reports:
        for role, n in report["model_loads"].items():
            total[role] = total.get(role, 0) + n
    return total


def test_two_days_load_each_model_once_and_a_rerun_loads_none(
        live_settings: Settings, smoke_models_dir: Path, tmp_path: Path) -> None:
    from boeflow.boe.store import fetched_day_files
    from boeflow.index.files import index_files

    settings = live_settings.model_copy(update={
        "profile": "smoke", "smoke_models_dir": smoke_models_dir,
        "embed_model": str(smoke_models_dir / "embedder"),
        "data_dir": tmp_path / "data", "es_index_prefix": PREFIX})
    client = get_client(settings)
    drop_indices(client, IndexNames(PREFIX))
    with BoeServer(SAMPLES) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 2})
        for day in DAYS:
            _fetch(day, replay)
    files = fetched_day_files(settings, date.fromisoformat(DAYS[0]), date.fromisoformat(DAYS[1]),
                              tmp_path)
    assert {f.stem for f in files} == EXPECTED
    index_files(files, settings)

    env = {**os.environ, **SMALL, "BOEFLOW_PROFILE": "smoke",
           "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models_dir),
           "BOEFLOW_DATA_DIR": str(tmp_path / "data"), "BOEFLOW_ES_URL": settings.es_url,
           "BOEFLOW_ES_INDEX_PREFIX": PREFIX}
    first = _enrich(env)
    # The smoke profile translates with Apertium: no translator model is loaded.
    assert _loads(first) == {"summarizer": 1}
    # Every sumario title, department and section name of both days, one Apertium run a day.
    titled = {r["day"]: r["titles_va"] for r in first}
    assert titled["2024-11-06"]["titles"] > 238 and \
        titled["2024-11-06"]["translated"] == titled["2024-11-06"]["titles"]
    assert titled["2024-11-13"]["translated"] > 0
    assert {d for r in first for d in r["enriched"]} == EXPECTED
    assert {d for r in first for d in r["generated"]} == EXPECTED
    assert all(r["failed"] == {} for r in first)
    records = {hit["_id"]: hit["_source"] for hit in client.search(
        index=f"{PREFIX}boe-documents", size=10, query={"match_all": {}})["hits"]["hits"]}
    assert set(records) == EXPECTED
    for doc_id, record in records.items():
        summary, summary_va = record["summary"], record["summary_va"]
        assert set(summary) == set(SUMMARY_FIELDS), doc_id  # schema-valid smoke summary
        assert set(summary_va) == set(SUMMARY_FIELDS), doc_id
        for name in SUMMARY_FIELDS:
            if isinstance(summary[name], list):
                assert len(summary_va[name]) == len(summary[name]), (doc_id, name)
        assert record["title_va"] is not None
        assert record["enrichment"]["va_source"] == "apertium"
        assert not check_language(record["title_va"], "va").flagged, record["title_va"]
        assert set(record["summary_va_review"]) >= {"titulo", "resumen", "a_quien_afecta"}
        # The smoke models write gibberish: a human must look, and the record says why.
        assert record["review_status"] == "needs_attention" and record["needs_attention"]
        assert record["review_reasons"]
        assert record["enrichment"]["smoke"] is True
        assert record["enrichment"]["summary_structured"] is True

    second = _enrich(env)
    assert _loads(second) == {}  # nothing to generate: no model is loaded at all
    assert all(r["titles_va"]["translated"] == 0 for r in second)  # no translation either
    assert all(r["generated"] == [] for r in second)
    assert {d for r in second for d in r["enriched"]} == EXPECTED
    again = {hit["_id"]: hit["_source"] for hit in client.search(
        index=f"{PREFIX}boe-documents", size=10, query={"match_all": {}})["hits"]["hits"]}
    for doc_id in EXPECTED:
        assert again[doc_id]["summary"] == records[doc_id]["summary"]
        assert again[doc_id]["review_reasons"] == records[doc_id]["review_reasons"]

    # What a person sees: one line per document, then one table (no model loaded).
    shown = run_boeflow(["enrich", "--date", DAYS[0], "--to", DAYS[1]], env=env, script=True,
                        timeout=600)
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stderr.splitlines() if line.strip()]
    assert sorted(line.split(":")[0] for line in lines) == sorted(EXPECTED), lines
    assert all(line.endswith("needs_attention (stored)") for line in lines), lines
    assert "loads" in shown.stdout and "Traceback" not in shown.stderr
    table_rows = [line for line in shown.stdout.splitlines() if line.startswith("│ 2024-11")]
    assert len(table_rows) == 8 and all("none" in row for row in table_rows)
