"""The enrich step: summaries and Valencian translations per batch, and the close of
the day's batches."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.jobs.common import (
    LANGUAGES,
    TaskFailed,
    is_published,
    owns_resources,
    peak_rss_mib,
    raw_store,
    recorded,
    resolve_settings,
)
from boeflow.jobs.digest import translate_titles
from boeflow.jobs.index import batch_files, batch_label, plan_batches
from boeflow.jobs.results import Closed, EnrichedBatch, EnrichedDay, EnrichedDocuments
from boeflow.jobs.review import review_day

if TYPE_CHECKING:
    from boeflow.enrich.day import OnDocument


@owns_resources
def enrich_day(day: str, settings: Settings | None = None,
               run_id: str | None = None, *, force: bool = False,
               languages: list[str] | None = None,
               on_document: OnDocument | None = None) -> EnrichedDay:
    """Summarise, translate (es→va) and review every fetched document of ``day``, by the
    same batches and ``enrich_batch`` the DAG's mapped tasks run, then ``close_batches``
    (the day's outcome, the Valencian titles of every item, the review), as the DAG's
    review task does (``boeflow enrich --date``, the demo). Cached: a rerun of a finished day
    generates nothing. A batch that fails is recorded and the day goes on, except for a
    setup failure (no model, no Elasticsearch), which fails the day with its one line."""
    from boeflow.core.errors import BoeflowError
    from boeflow.enrich.backends import loads_since, model_loads

    settings = resolve_settings(settings)
    if not is_published(settings, day):
        with recorded(settings, day, "enrich", run_id) as detail:
            empty = EnrichedDay(day=day, documents=0, enriched=[], needs_attention=[],
                                failed={}, generated=[], model_loads={},
                                titles_va=translate_titles(settings, date.fromisoformat(day)),
                                smoke=settings.is_smoke, note="no publication")
            detail.update(empty.to_json())
        return empty
    loads_before = model_loads()
    batches = plan_batches(day, settings)
    done = EnrichedDocuments()
    for planned in batches:
        try:
            result = enrich_batch(day, planned.ids, settings, planned.batch,
                                  languages=languages, force=force, on_document=on_document)
        except TaskFailed as exc:
            if isinstance(exc.__cause__, BoeflowError) and not done.enriched:
                raise TaskFailed(str(exc.__cause__)) from exc.__cause__
            done.failed.update({i: str(exc) for i in planned.ids})
            continue
        done.enriched += result.enriched
        done.needs_attention += result.needs_attention
        done.generated += result.generated
        done.failed.update(result.failed)
    closed = close_batches(day, settings, run_id)
    if done.failed and not done.enriched:
        first = next(iter(done.failed.items()))
        raise TaskFailed(f"{day}: every document failed to enrich ({len(done.failed)}); "
                         f"first: {first[0]}: {first[1]}")
    return EnrichedDay(day=day, documents=sum(len(b.ids) for b in batches),
                       **done.model_dump(), model_loads=loads_since(loads_before),
                       titles_va=closed.titles_va, reviewed=closed.reviewed,
                       smoke=settings.is_smoke)


def _enrich_ids(day: str, ids: list[str], settings: Settings, languages: list[str],
                force: bool, on_document: OnDocument | None = None) -> EnrichedDocuments:
    """Summarise (es), translate (va, when asked) and review the documents ``ids`` through
    ``boeflow.enrich.day.enrich_documents``: models loaded once per worker, prompts batched
    across the batch's documents, each outcome stored on its ``boe-documents`` record."""
    from boeflow.enrich.day import enrich_and_store, read_documents
    from boeflow.index.client import es_session, names_for

    with tempfile.TemporaryDirectory() as workdir, es_session(settings) as client:
        files, failed = batch_files(settings, date.fromisoformat(day), ids, Path(workdir))
        docs, unreadable = read_documents(files)
        failed.update(unreadable)
        stored = enrich_and_store(docs, settings, client, names_for(settings), failed,
                                  force=force, translate="va" in languages,
                                  on_document=on_document)
    return EnrichedDocuments(enriched=stored.enriched, needs_attention=stored.needs_attention,
                             generated=stored.generated, failed=stored.failed)


@owns_resources
def enrich_batch(day: str, ids: list[str], settings: Settings | None = None, batch: int = 0,
                 *, languages: list[str] | None = None, force: bool = False,
                 on_document: OnDocument | None = None) -> EnrichedBatch:
    """Enrich the documents ``ids`` of ``day`` (stored on their ``boe-documents``
    records; cached, so a rerun generates nothing unless ``force``). Documents that fail
    are recorded with their reason; a batch that cannot run at all fails (Airflow
    retries it) after recording every id as failed."""
    from boeflow.enrich.backends import calls_since, generate_calls, loads_since, model_loads

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    wanted = [lang for lang in (languages or LANGUAGES) if lang in LANGUAGES]
    loads_before, calls_before = model_loads(), generate_calls()
    try:
        result = _enrich_ids(day, ids, settings, wanted, force, on_document)
    except Exception as exc:
        message = one_line(exc)
        _record_enrich_failures(settings, when, {i: message for i in ids})
        raise TaskFailed(f"enrich {day} batch {batch} ({batch_label(ids)}): {message}") from exc
    _record_enrich_failures(settings, when, result.failed)
    # Where the work ran and what it cost: the process, its model loads and generate calls,
    # its peak RSS (docs/scale.md reads these from the mapped tasks' results).
    return EnrichedBatch(day=day, batch=batch, ids=ids, languages=wanted,
                         **result.model_dump(), smoke=settings.is_smoke, pid=os.getpid(),
                         model_loads=loads_since(loads_before),
                         generate_calls=calls_since(calls_before),
                         peak_rss_mib=peak_rss_mib())


def _record_enrich_failures(settings: Settings, when: date, failed: Mapping[str, str]) -> None:
    from boeflow.enrich.prompts import SUMMARY_PROMPT_VERSION
    from boeflow.state.db import state
    from boeflow.state.records import record_enrichments

    if not failed:
        return
    rows = [{"boe_id": boe_id, "day": when, "summary_status": "failed",
             "review_status": "failed", "needs_attention": True,
             "review_reasons": [reason], "error": reason,
             "summarizer_model": settings.summarizer_model,
             "translator_model": settings.translator_model,
             "prompt_version": SUMMARY_PROMPT_VERSION, "smoke": settings.is_smoke}
            for boe_id, reason in failed.items()]
    with state(settings) as conn:
        record_enrichments(conn, when, rows)


@owns_resources
def close_batches(day: str, settings: Settings | None = None,
                  run_id: str | None = None,
                  results: Sequence[EnrichedBatch] | None = None) -> Closed:
    """After the batches (whatever their outcome): record the day's ``index`` and
    ``enrich`` outcome, then the automatic review. ``results``: the batches' own results
    (the DAG's mapped ``enrich`` tasks, each with its batch's ``index`` result), which say
    what each batch that ran did; the documents of a batch with no result (it failed) are
    read from the per-document rows it recorded before failing, and so is the whole day
    without ``results`` (``enrich_day``). Fails only when the day itself was not fetched
    (no manifest, or the sumario could not be had)."""
    from boeflow.boe.store import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import enrichment_errors, record_task, stored_documents

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    manifest = load_manifest(raw_store(settings), when)
    if manifest is None or manifest.status == "error":
        reason = manifest.error if manifest else "no manifest"
        raise TaskFailed(f"{day} was not fetched ({reason}): nothing to review")
    reported = list(results or [])
    covered = {i for r in reported for i in r.ids}
    index_failed: dict[str, str] = {}
    indexed_ids: set[str] = set()
    enrich_failed: dict[str, str] = {}
    for r in reported:
        if r.index is not None:
            indexed_ids.update(r.index.indexed or [])
            index_failed.update(r.index.failed or {})
        enrich_failed.update(r.failed)
    with state(settings) as conn:
        docs = stored_documents(conn, when)
        enr = enrichment_errors(conn, when)
        for row in docs:  # what no batch reported: failed batches; the whole day without
            if row["boe_id"] in covered:  # results
                continue
            if row["index_status"] == "failed":
                index_failed[row["boe_id"]] = row["index_error"]
            elif row["index_status"] == "indexed":
                indexed_ids.add(row["boe_id"])
        indexed = sorted(indexed_ids)
        record_task(conn, when, "index", "failed" if index_failed and not indexed
                    else "success", detail={"indexed": len(indexed), "failed": index_failed},
                    run_id=run_id)
        unreported = {i: error for i, error in enr.items() if i not in covered}
    if unreported:  # a later attempt that enriched the document wins over its error
        from boeflow.digest.collect import fetch_records
        from boeflow.index.client import es_session, names_for

        with es_session(settings) as client:
            records = fetch_records(client, names_for(settings), sorted(unreported))
        enrich_failed.update({i: e for i, e in unreported.items()
                              if not (records.get(i) or {}).get("review_status")})
    titles = translate_titles(settings, when)
    reviewed = review_day(day, settings, run_id, enrich_failed)
    with state(settings) as conn:
        record_task(conn, when, "enrich", "failed" if enrich_failed and not reviewed.reviewed
                    else "success", detail={"enriched": reviewed.reviewed
                                            - len(reviewed.failed),
                                            "failed": enrich_failed}, run_id=run_id)
    return Closed(**reviewed.model_dump(), indexed=len(indexed), index_failed=index_failed,
                  enrich_failed=enrich_failed, titles_va=titles)
