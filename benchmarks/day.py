"""Day-level benchmarks on the composed many-document day (every recorded item XML, 101
documents from 1.5 KB anuncios to the 865 KB Ley Concursal, under the sumario
``BOE-S-2025-COMPUESTO`` of 2025-07-06: ``boeflow.boe.samples``), replayed on loopback and
fetched into a fresh raw store, then, each ours vs a baseline in the same run:

* ``BENCH enrich_day``: summary (es), full Valencian translation of every summary field and
  review of every document. Ours: the enrich step as ``boeflow enrich --date`` runs it
  (``boeflow.enrich.day.iter_day`` windows of ``enrich_window_docs`` documents, each through
  ``enrich_documents``: map, reduce and final prompts of all the window's documents batched
  together, then all their translations). Baseline: a per-document loop with the models
  cached (``Summarizer.summarize`` then ``translate_summary`` of the enrich step's own
  translator, ``make_translator``, one document at a time, the same backends). Both arms
  translate with the translator model (``--translate-backend model``, the production
  setting, with its Apertium cross-check; the smoke profile's own default is Apertium).
  Each arm starts from an empty enrich store. Also printed: each long law's share of the
  baseline's time and the ratio ceiling it implies (batching cannot shorten
  a law's own sequential map-reduce: ceiling = total / time of the long laws).
* ``BENCH index_day``: parse → chunk → embed → bulk of the day into Elasticsearch. Ours:
  ``boeflow.index.files.index_files`` (documents streamed, embedding and record lookups batched
  across documents, bounded bulk requests, one refresh). Baseline: the naive per-document
  loop (parse, chunk, embed and ``index_documents`` of one document at a time, so one
  lookup, one embedding call, one bulk and one refresh per document). Fresh indices and an
  empty embedding cache for each arm.
* ``BENCH day_wall``: the whole day (fetch, mapped index/enrich batches, digest, approval,
  publication) on the local Celery deployment with two workers vs one:
  ``tests/support/composed_day.py`` (``python -m tests.support.composed_day --workers N``)
  runs it; this script starts it twice and compares the wall times.

Smoke models on this 2-core CPU (services running: ``boeflow services start``)::

    BOEFLOW_PROFILE=smoke python benchmarks/day.py [--only enrich|index|wall]

Production models on a GPU (ALIA-7B bf16, Aitana-2B, bge-m3; weights in the Hugging Face
cache)::

    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda python benchmarks/day.py --only enrich \\
        --batch-size 16 --day-max-new-tokens 512 --day-short-max-new-tokens 320 \\
        --day-map-max-new-tokens 256 --day-translate-max-new-tokens 512
    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda python benchmarks/day.py --only index
    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda BOEFLOW_AIRFLOW_LLM_POOL_SLOTS=2 \\
        python benchmarks/day.py --only wall
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from boeflow.boe.samples import COMPOSED_DAY, replay_root
from boeflow.core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "boe"
LONG_LAW_CHARS = 100_000


@contextmanager
def fetched_day(data_dir: Path) -> Iterator[Settings]:
    """The composed day fetched from the replayed samples into ``data_dir``'s raw store."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.replay import BoeServer
    from boeflow.boe.store import RawStore, store_url

    root = replay_root(SAMPLES, data_dir / "replay")
    settings = Settings(data_dir=data_dir / "data")
    with BoeServer(root) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 2})
        with BoeClient(ClientConfig.from_settings(replay)) as client:
            summary = Fetcher(client, RawStore(store_url(replay)),
                              FetchOptions.from_settings(replay)).fetch_day(COMPOSED_DAY)
    if summary.failed or summary.status != "published":
        raise SystemExit(f"composed day not fetched: {summary.as_dict()}")
    yield settings


# --- enrich_day -------------------------------------------------------------------------------

def enrich_settings(args: argparse.Namespace, base: Settings, data_dir: Path) -> Settings:
    return base.model_copy(update={
        "data_dir": data_dir, "gen_batch_size": args.batch_size,
        "max_new_tokens": args.day_max_new_tokens,
        "summary_short_max_new_tokens": args.day_short_max_new_tokens,
        "summary_map_max_new_tokens": args.day_map_max_new_tokens,
        "translate_max_new_tokens": args.day_translate_max_new_tokens,
        "translate_backend": args.translate_backend})


def enrich_ours(settings: Settings, raw: Settings) -> tuple[int, int]:
    """The enrich step's own path: windows of documents from the raw store."""
    from boeflow.enrich.day import enrich_documents, iter_day

    documents = failures = 0
    for docs, unreadable in iter_day(raw, COMPOSED_DAY, settings.enrich_window_docs):
        documents += len(docs)
        failures += len(unreadable)
        failures += sum(o.error is not None for o in enrich_documents(docs, settings))
    return documents, failures


def enrich_loop(settings: Settings, raw: Settings) -> tuple[int, int, dict[str, float]]:
    """One document at a time, the backends cached; seconds per document."""
    from boeflow.enrich.backends import get_backend
    from boeflow.enrich.day import iter_day
    from boeflow.enrich.summarize import Summarizer
    from boeflow.enrich.translate import make_translator

    # The enrich step's own summarizer and translator (make_translator: the same backend,
    # translator and Apertium cross-check as enrich_documents), one document at a time.
    summarizer = Summarizer(settings, get_backend(settings, "summarizer"))
    translator = make_translator(settings)
    seconds: dict[str, float] = {}
    documents = failures = 0
    for docs, unreadable in iter_day(raw, COMPOSED_DAY, settings.enrich_window_docs):
        failures += len(unreadable)
        for doc in docs:
            documents += 1
            started = time.perf_counter()
            try:
                translator.translate_summary(summarizer.summarize(doc))
            except Exception as exc:  # counted, as the day would report it
                print(f"  {doc.id}: {type(exc).__name__}: {exc}")
                failures += 1
            seconds[f"{doc.id} ({len(doc.text):,} chars)"] = time.perf_counter() - started
    return documents, failures, seconds


def measure_enrich(args: argparse.Namespace, raw: Settings) -> dict[str, Any]:
    from boeflow.enrich.backends import clear_backends, get_backend, model_loads
    from boeflow.enrich.translate import apertium_for

    # Load both models once before timing: both arms use the same cached backends.
    clear_backends()
    warm = enrich_settings(args, raw, raw.data_dir / "warm")
    get_backend(warm, "summarizer").backend()  # lazy: load now, outside the timing
    get_backend(warm, "translator").backend()
    apertium_for(warm, "es", "va").translate(["Hola."])  # its first run, outside the timing
    loads = dict(model_loads())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as base_dir:
        started = time.perf_counter()
        docs, failures, per_doc = enrich_loop(enrich_settings(args, raw, Path(base_dir)), raw)
        results["baseline_s"] = time.perf_counter() - started
    results["baseline_failures"] = failures
    with tempfile.TemporaryDirectory() as ours_dir:
        started = time.perf_counter()
        docs, failures = enrich_ours(enrich_settings(args, raw, Path(ours_dir)), raw)
        results["ours_s"] = time.perf_counter() - started
    results["ours_failures"] = failures
    results["documents"] = docs
    results["model_loads"] = {k: v - loads.get(k, 0) for k, v in model_loads().items()}
    long = {k: v for k, v in per_doc.items()
            if int(k.rsplit("(", 1)[1].split()[0].replace(",", "")) >= LONG_LAW_CHARS}
    long_s = sum(long.values())
    results["long_laws"] = {k: round(v, 1) for k, v in sorted(long.items(), key=lambda x: -x[1])}
    results["long_share"] = long_s / results["baseline_s"]
    results["ceiling"] = results["baseline_s"] / long_s if long_s else float("inf")
    rate_ours = docs / results["ours_s"] * 60
    rate_base = docs / results["baseline_s"] * 60
    print(f"enrich_day: {docs} documents; per-document loop {results['baseline_s']:.1f} s "
          f"({results['baseline_failures']} failures), ours {results['ours_s']:.1f} s "
          f"({results['ours_failures']} failures); model loads while timing "
          f"{results['model_loads']}")
    print(f"  long laws (>= {LONG_LAW_CHARS:,} chars) in the per-document loop: "
          + ", ".join(f"{k} {v} s" for k, v in results["long_laws"].items())
          + f"; {results['long_share']:.0%} of its time, so batching across documents can "
          f"reach at most ratio {results['ceiling']:.2f}")
    print(f"BENCH enrich_day ours={rate_ours:.2f} baseline={rate_base:.2f} unit=docs/min "
          f"ratio={rate_ours / rate_base:.2f}")
    results.update(ours=rate_ours, baseline=rate_base)
    return results


# --- index_day --------------------------------------------------------------------------------

def index_ours(settings: Settings, files: list[Path]) -> tuple[int, int]:
    from boeflow.index.files import index_files

    report = index_files(files, settings)
    return report.documents, report.chunks


def index_loop(settings: Settings, files: list[Path]) -> tuple[int, int]:
    """Naive: each document parsed, chunked, embedded and indexed on its own."""
    from boeflow.index.client import bulk_client, get_client, names_for, setup_indices
    from boeflow.index.embed import build_embedder
    from boeflow.index.files import make_chunker
    from boeflow.index.writer import index_documents
    from boeflow.parse import parse_file

    embedder = build_embedder(settings)
    chunker = make_chunker(settings)
    documents = chunks = 0
    with get_client(settings) as client:
        setup_indices(client, settings, embedder.dimension)
        for path in files:
            doc = parse_file(path)
            pieces = chunker(doc)
            index_documents(bulk_client(client, settings), names_for(settings), embedder,
                            [(doc, pieces)], smoke=settings.is_smoke)
            documents += 1
            chunks += len(pieces)
    return documents, chunks


def measure_index(raw: Settings) -> dict[str, Any]:
    from boeflow.boe.store import fetched_day_files
    from boeflow.index.client import drop_indices, get_client, names_for

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        files = fetched_day_files(raw, COMPOSED_DAY, COMPOSED_DAY, Path(work))
        size = sum(f.stat().st_size for f in files)
        for arm, run in (("baseline", index_loop), ("ours", index_ours)):
            with tempfile.TemporaryDirectory() as data_dir:  # empty embedding cache
                settings = raw.model_copy(update={"data_dir": Path(data_dir),
                                                  "es_index_prefix": f"bench-day-{arm}-"})
                with get_client(settings) as client:
                    drop_indices(client, names_for(settings))
                try:  # each arm loads the embedder once, inside its timing
                    started = time.perf_counter()
                    docs, chunks = run(settings, files)
                    results[f"{arm}_s"] = time.perf_counter() - started
                finally:
                    with get_client(settings) as client:
                        drop_indices(client, names_for(settings))
        results.update(documents=docs, chunks=chunks, bytes=size)
    ours = results["chunks"] / results["ours_s"]
    base = results["chunks"] / results["baseline_s"]
    print(f"index_day: {docs} documents, {chunks} chunks, {size / 1e6:.1f} MB of XML; "
          f"per-document loop {results['baseline_s']:.1f} s, ours {results['ours_s']:.1f} s")
    print(f"BENCH index_day ours={ours:.1f} baseline={base:.1f} unit=chunks/s "
          f"ratio={ours / base:.2f}")
    results.update(ours=ours, baseline=base)
    return results


# --- day_wall ---------------------------------------------------------------------------------

def measure_wall(args: argparse.Namespace) -> dict[str, Any]:
    """The composed day on the local Celery deployment, two workers then one."""
    walls: dict[int, float] = {}
    for workers in (2, 1):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, "-m", "tests.support.composed_day", "--workers",
                       str(workers), "--json", out.name]
            print("$ " + " ".join(command), flush=True)
            subprocess.run(command, check=True, cwd=REPO)
            result = json.loads(Path(out.name).read_text())
        walls[workers] = result["wall_s"]
        print(f"  {workers} worker(s): {result['wall_s']:.1f} s; stages "
              + ", ".join(f"{k} {v:.1f} s" for k, v in result["stages"].items()))
    print(f"BENCH day_wall ours={walls[2]:.1f} baseline={walls[1]:.1f} unit=s "
          f"ratio={walls[1] / walls[2]:.2f}")
    return {"two_workers_s": walls[2], "one_worker_s": walls[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["enrich", "index", "wall"], default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--day-max-new-tokens", type=int, default=200)
    parser.add_argument("--day-short-max-new-tokens", type=int, default=160)
    parser.add_argument("--day-map-max-new-tokens", type=int, default=32)
    parser.add_argument("--day-translate-max-new-tokens", type=int, default=64)
    parser.add_argument("--translate-backend", choices=["model", "apertium"], default="model",
                        help="who translates in both enrich_day arms (default: the translator "
                        "model, cross-checked against Apertium, as in production)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.only in (None, "enrich", "index"):
        with tempfile.TemporaryDirectory() as work, fetched_day(Path(work)) as raw:
            if args.only in (None, "index"):
                figures["index_day"] = measure_index(raw)
            if args.only in (None, "enrich"):
                figures["enrich_day"] = measure_enrich(args, raw)
    if args.only in (None, "wall"):
        figures["day_wall"] = measure_wall(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
