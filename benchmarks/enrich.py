"""Enrichment speed: a whole day's enrichment, and the summariser's generation throughput.

**Demo days** (``BENCH enrich_demo_days``; the day-level ``BENCH enrich_day`` on the
composed 101-document day is ``benchmarks/day.py``): every sample document published on
2024-11-06 and 2024-11-13 (replayed on loopback, fetched into a fresh raw store, read through
``boeflow.parse``), enriched end to end — summary, translation of every summary field,
review — three ways in the same run, each from an empty enrich store:

* ours: ``boeflow.enrich.day.enrich_documents`` per day, as ``boeflow enrich --date D1 --to
  D2`` runs it: shared lazy backends (one load per model), prompts of all the day's
  documents batched together;
* per-document loop with a new backend per document (what the enrich task did before:
  ``Summarizer(make_backend(...))`` and ``Translator(make_backend(...))`` per document);
* per-document loop with the backends built once (the baseline of the BENCH line).

Reports documents/min for each, then
``BENCH enrich_demo_days ours=<docs/min> baseline=<docs/min, cached per-document loop>
unit=docs/min ratio=<ours/baseline>``.

**Generation** (``BENCH enrich``): in one run, on the same prompts (the real short-summary
prompt of each recorded BOE document, text cut to ``--prompt-tokens``), with greedy decoding
and the same ``max_new_tokens``:

* ours: ``TransformersBackend.generate`` with ``--batch-size`` prompts per ``generate`` call
  (left padding, prompts sorted by length);
* baseline: the same backend with batch size 1 (one ``generate`` call per prompt).

Reports generated tokens/s and documents/min for both, then one line
``BENCH enrich ours=<tokens/s> baseline=<tokens/s> unit=tokens/s ratio=<ours/baseline>``.

**Titles** (``BENCH translate_titles``): every distinct sumario title, department and
section name of the demo days (2024-11-06: 238 items) translated to Valencian by Apertium,
one process per day as ``boeflow.enrich.titles`` runs it, against one ``apertium`` process
per title; reports titles/s of both and seconds per day, then
``BENCH translate_titles ours=<titles/s> baseline=<titles/s> unit=titles/s ratio=<x>``.

Smoke models on CPU (what CI runs)::

    BOEFLOW_PROFILE=smoke python benchmarks/enrich.py [--only day|generation|titles]

Production models on a GPU (ALIA-7B in bf16 with ``device_map``, Aitana-2B; weights already
in the Hugging Face cache, since ``hf_offline`` is on by default)::

    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda \\
        python benchmarks/enrich.py --only day --batch-size 16 --day-max-new-tokens 512
    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda \\
        python benchmarks/enrich.py --only generation --docs 32 --batch-size 16 \\
        --max-new-tokens 256 --prompt-tokens 3000

(add ``--role translator`` for Aitana-2B's generation throughput).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from boeflow.core.settings import Settings
from boeflow.enrich.backends import GenerationParams, TransformersBackend
from boeflow.enrich.budget import hard_split
from boeflow.enrich.prompts import DEFAULT_SUMMARY_PROMPTS, Message
from boeflow.review.source import SourceDocument, read_document

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "samples" / "boe" / "documents"
SAMPLES = REPO / "samples" / "boe"
DAYS = (date(2024, 11, 6), date(2024, 11, 13))


def build_prompts(backend: TransformersBackend, docs: int, prompt_tokens: int
                  ) -> list[list[Message]]:
    paths = sorted(DOCUMENTS.glob("*.xml"))
    prompts = []
    for i in range(docs):
        doc = read_document(paths[i % len(paths)])
        text = hard_split(doc.text, prompt_tokens, backend.tokenizer)[0]
        prompts.append(DEFAULT_SUMMARY_PROMPTS.summary(
            doc.header(), text, short=True, max_chars=500,
            special_tokens=backend.special_tokens()))
    return prompts


def run(backend: TransformersBackend, prompts: list[list[Message]], batch_size: int,
        params: GenerationParams) -> tuple[float, int]:
    backend.batch_size = batch_size
    started = time.perf_counter()
    results = backend.generate(prompts, params)
    elapsed = time.perf_counter() - started
    return elapsed, sum(r.completion_tokens for r in results)


def _fetch(day: str, settings: Settings) -> None:
    """Fetch one replayed day into the raw store (the fetch stage alone, no state DB)."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import RawStore, store_url

    with BoeClient(ClientConfig.from_settings(settings)) as client:
        Fetcher(client, RawStore(store_url(settings)), FetchOptions.from_settings(settings)
                ).fetch_day(date.fromisoformat(day))


def fetch_days(data_dir: Path) -> dict[date, list[SourceDocument]]:
    """The demo days fetched from the replayed samples into a fresh raw store, read back
    through the production path (raw store → boeflow.parse)."""
    from boeflow.boe.replay import BoeServer
    from boeflow.enrich.day import read_day

    settings = Settings(data_dir=data_dir)
    with BoeServer(SAMPLES) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 2})
        for day in DAYS:
            _fetch(day.isoformat(), replay)
    days = {}
    for day in DAYS:
        docs, failed = read_day(settings, day)
        if failed:
            raise SystemExit(f"cannot read {failed}")
        days[day] = docs
    return days


def day_settings(args: argparse.Namespace, data_dir: Path) -> Settings:
    # The translator model on every path (the smoke profile would pick Apertium for ours
    # only): this measure compares the model pipeline's batching, not two translators.
    return Settings(data_dir=data_dir, gen_batch_size=args.batch_size,
                    translate_backend="model", translate_reference=False,
                    max_new_tokens=args.day_max_new_tokens,
                    summary_short_max_new_tokens=args.day_short_max_new_tokens,
                    summary_map_max_new_tokens=args.day_map_max_new_tokens,
                    translate_max_new_tokens=args.day_translate_max_new_tokens)


def run_ours(days: dict[date, list[SourceDocument]], settings: Settings) -> int:
    from boeflow.enrich.day import enrich_documents

    failures = 0
    for docs in days.values():
        failures += sum(o.error is not None for o in enrich_documents(docs, settings))
    return failures


def run_loop(days: dict[date, list[SourceDocument]], settings: Settings,
             new_backend_per_document: bool) -> int:
    from boeflow.enrich.backends import Backend, make_backend
    from boeflow.enrich.summarize import Summarizer
    from boeflow.enrich.translate import Translator

    shared: dict[str, Backend] = {}

    def backend(role: str) -> Backend:
        if new_backend_per_document:
            return make_backend(settings, role)
        if role not in shared:
            shared[role] = make_backend(settings, role)
        return shared[role]

    failures = 0
    for docs in days.values():
        for doc in docs:
            try:
                record = Summarizer(settings, backend("summarizer")).summarize(doc)
                Translator(settings, backend("translator")).translate_summary(record)
            except Exception as exc:  # counted, as the day would report it
                print(f"  {doc.id}: {type(exc).__name__}: {exc}")
                failures += 1
    return failures


def measure_day(args: argparse.Namespace) -> None:
    from boeflow.enrich.backends import clear_backends, model_loads

    with tempfile.TemporaryDirectory() as raw_dir:
        days = fetch_days(Path(raw_dir))
        n_docs = sum(len(docs) for docs in days.values())
        print(f"day-level: {n_docs} documents of {', '.join(str(d) for d in DAYS)}: "
              + ", ".join(f"{d.id} ({len(d.text):,} chars)" for ds in days.values() for d in ds))
        runs: list[tuple[str, Callable[[Settings], int]]] = [
            ("per-document loop, new backend per document",
             lambda s: run_loop(days, s, new_backend_per_document=True)),
            ("per-document loop, backends built once",
             lambda s: run_loop(days, s, new_backend_per_document=False)),
            ("ours (enrich_documents per day)", lambda s: run_ours(days, s)),
        ]
        rates: dict[str, float] = {}
        for name, run_once in runs:
            with tempfile.TemporaryDirectory() as data_dir:  # empty enrich store each time
                clear_backends()
                settings = day_settings(args, Path(data_dir))
                loads_before = sum(model_loads().values())
                started = time.perf_counter()
                failures = run_once(settings)
                elapsed = time.perf_counter() - started
                rates[name] = n_docs / elapsed * 60
                loads = sum(model_loads().values()) - loads_before
                print(f"{name:46s} {elapsed:8.1f} s  {rates[name]:7.2f} documents/min"
                      f"  failures {failures}" + (f"  shared loads {loads}" if loads else ""))
    ours, baseline = rates[runs[2][0]], rates[runs[1][0]]
    print(f"BENCH enrich_demo_days ours={ours:.2f} baseline={baseline:.2f} unit=docs/min "
          f"ratio={ours / baseline:.2f}")


def measure_titles(args: argparse.Namespace) -> None:
    """Every sumario title of the demo days in Valencian: one Apertium process for a day's
    titles (ours, as ``boeflow.enrich.titles`` runs it) against one ``apertium`` process per
    title (the baseline)."""
    import statistics
    import subprocess

    from boeflow.boe.replay import BoeServer
    from boeflow.boe.store import RawStore, load_manifest, store_url
    from boeflow.enrich.apertium import Apertium
    from boeflow.enrich.titles import day_texts

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        with BoeServer(SAMPLES) as server:
            replay = settings.model_copy(update={"boe_base_url": server.url,
                                                 "boe_rate_limit": 0.0, "boe_max_attempts": 2})
            for day in DAYS:
                _fetch(day.isoformat(), replay)
        store = RawStore(store_url(settings))
        manifests = [m for m in (load_manifest(store, day) for day in DAYS) if m is not None]
    per_day = [day_texts(m) for m in manifests]
    titles = [t for texts in per_day for t in texts]
    engine = Apertium(settings.translate_apertium_mode)
    engine.translate(titles[:5])  # warm-up (page cache of the dictionaries)
    rounds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for texts in per_day:  # one process per day, as the enrich step runs it
            engine.translate(texts)
        rounds.append(time.perf_counter() - started)
    ours_time = statistics.median(rounds)
    sample = titles[:args.title_baseline]
    started = time.perf_counter()
    for title in sample:
        subprocess.run(["apertium", "-u", settings.translate_apertium_mode], input=title,
                       capture_output=True, text=True, check=True)
    base_time = time.perf_counter() - started
    ours, baseline = len(titles) / ours_time, len(sample) / base_time
    print(f"titles: {len(titles)} distinct titles, department and section names of "
          f"{len(per_day)} days ({', '.join(str(len(t)) for t in per_day)}); mode "
          f"{engine.mode}")
    print(f"ours (one process per day)     {ours_time:7.2f} s  {ours:8.1f} titles/s  "
          f"({ours_time / len(per_day):.2f} s per day)")
    print(f"baseline (process per title)   {base_time:7.2f} s  {baseline:8.1f} titles/s  "
          f"({len(sample)} titles)")
    print(f"BENCH translate_titles ours={ours:.1f} baseline={baseline:.1f} unit=titles/s "
          f"ratio={ours / baseline:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["day", "generation", "titles"], default=None)
    parser.add_argument("--title-baseline", type=int, default=10_000,
                        help="titles translated one process each (the baseline)")
    parser.add_argument("--day-max-new-tokens", type=int, default=200)
    parser.add_argument("--day-short-max-new-tokens", type=int, default=160)
    parser.add_argument("--day-map-max-new-tokens", type=int, default=32)
    parser.add_argument("--day-translate-max-new-tokens", type=int, default=64)
    parser.add_argument("--role", choices=["summarizer", "translator"], default="summarizer")
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
    parser.add_argument("--prompt-tokens", type=int, default=512,
                        help="document text per prompt (tokens of the model's tokenizer)")
    args = parser.parse_args()
    if args.only in (None, "day"):
        measure_day(args)
    if args.only in (None, "generation"):
        measure_generation(args)
    if args.only in (None, "titles"):
        measure_titles(args)


def measure_generation(args: argparse.Namespace) -> None:
    settings = Settings()
    ref = settings.summarizer_model if args.role == "summarizer" else settings.translator_model
    backend = TransformersBackend(settings, ref)
    prompts = build_prompts(backend, args.docs, args.prompt_tokens)
    params = GenerationParams.from_settings(settings, args.max_new_tokens)
    prompt_tokens = [backend.count_tokens(p) for p in prompts]
    print(f"model {ref} ({'smoke' if backend.is_smoke else 'production'}) on {backend.chat.device}"
          f"; {len(prompts)} prompts of {min(prompt_tokens)}–{max(prompt_tokens)} tokens; "
          f"max_new_tokens={args.max_new_tokens}; batch size {args.batch_size}")

    # Warm-up of both configurations (first calls on new shapes are slow on CPU), then
    # alternating measured rounds; the median round of each is reported.
    warm = GenerationParams.from_settings(settings, min(8, args.max_new_tokens))
    run(backend, prompts, 1, warm)
    run(backend, prompts, args.batch_size, warm)
    base_rounds, ours_rounds = [], []
    for _ in range(args.rounds):
        base_rounds.append(run(backend, prompts, 1, params))
        ours_rounds.append(run(backend, prompts, args.batch_size, params))
    base_time, base_tokens = sorted(base_rounds)[len(base_rounds) // 2]
    ours_time, ours_tokens = sorted(ours_rounds)[len(ours_rounds) // 2]

    base_rate = base_tokens / base_time
    ours_rate = ours_tokens / ours_time
    for name, elapsed, tokens in (("baseline (one at a time)", base_time, base_tokens),
                                  (f"ours (batch {args.batch_size})", ours_time, ours_tokens)):
        print(f"{name:26s} {elapsed:7.2f} s  {tokens:6d} tokens  {tokens / elapsed:9.1f} tokens/s"
              f"  {len(prompts) / elapsed * 60:8.1f} documents/min")
    print(f"BENCH enrich ours={ours_rate:.1f} baseline={base_rate:.1f} unit=tokens/s "
          f"ratio={ours_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
