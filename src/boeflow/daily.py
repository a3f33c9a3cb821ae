"""The daily job, one plain function per step: ``which_day → fetch → index → enrich → review →
build_digest → approve → publish → deliver``. In Airflow the per-document steps run per batch
of items (``plan_batches`` → ``index_batch`` / ``enrich_batch`` → ``close_batches``), so the
grid names each batch by its BOE ids and one bad batch never stops the day.

The Airflow DAGs (``dags/boe_daily.py``, ``dags/boe_digest.py``), the CLI and the demo all
call these. Each takes the day as ISO text, a ``Settings`` (so Airflow glue can build them
from Connections) and plain JSON values, returns a JSON-serialisable dict, and records its
outcome for the day in PostgreSQL (``task_runs``), so "what is done and what failed on day D"
is one query (``boeflow status --date D``). Every step is idempotent: a rerun of a finished
day downloads nothing, does no model work, publishes nothing new and sends no second e-mail.
"""

from __future__ import annotations

import logging
import os
import resource
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from boeflow.boe.site import BOE_TIMEZONE as BOE_TIMEZONE  # one definition, re-exported
from boeflow.config import Settings, get_settings
from boeflow.digest.decision import PUBLISH, REJECT, Decision

log = logging.getLogger(__name__)
APPROVAL_OPTIONS = [PUBLISH, REJECT]


class TaskFailed(RuntimeError):
    """The task must fail (and be retried by Airflow); the message says why in one line."""


@contextmanager
def _recorded(settings: Settings, day: str, task: str,
              run_id: str | None) -> Iterator[dict[str, Any]]:
    """Record the task's outcome in PostgreSQL: ``running``, then ``success`` with the
    returned detail, or ``failed`` with the error line."""
    from boeflow.state.db import StateError, state
    from boeflow.state.records import record_task

    when = date.fromisoformat(day)
    detail: dict[str, Any] = {}
    try:
        with state(settings) as conn:
            record_task(conn, when, task, "running", run_id=run_id)
    except StateError as exc:
        raise TaskFailed(str(exc)) from None
    try:
        yield detail
    except Exception as exc:
        message = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        try:
            with state(settings) as conn:
                record_task(conn, when, task, "failed", detail=detail, error=message,
                            run_id=run_id)
        except StateError:  # PostgreSQL is gone: keep the first error's line
            raise TaskFailed(f"{task} {day}: {message} (this failure could not be recorded "
                             "in PostgreSQL either)") from None
        if isinstance(exc, TaskFailed):
            raise
        raise TaskFailed(f"{task} {day}: {message}") from exc
    with state(settings) as conn:
        record_task(conn, when, task, detail.pop("_status", "success"), detail=detail,
                    run_id=run_id)


def _settings(settings: Settings | None) -> Settings:
    return settings or get_settings()


def resolve_day(requested: str | None, logical_date: str | None) -> str:
    """The BOE day a run works on: the one asked for in the trigger form, else the run's
    logical date (or, for a manual run without one, when it was triggered), as a day in
    Madrid. Returned as ISO ``YYYY-MM-DD``."""
    from zoneinfo import ZoneInfo

    value = requested or logical_date
    if not value:
        raise TaskFailed("no date: pass `date` in the run parameters")
    try:
        if len(value) <= 10:
            return date.fromisoformat(value).isoformat()
        when = datetime.fromisoformat(value)
    except ValueError:
        raise TaskFailed(f"not a date: {value!r} (expected YYYY-MM-DD)") from None
    if when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(BOE_TIMEZONE))
    return when.date().isoformat()


def _store(settings: Settings) -> Any:
    from boeflow.boe.store import RawStore, store_url

    return RawStore(store_url(settings))


def _published(settings: Settings, day: str) -> bool:
    """Whether the BOE published anything that day (per the fetched manifest)."""
    from boeflow.digest.collect import load_manifest

    manifest = load_manifest(_store(settings), date.fromisoformat(day))
    return manifest is not None and manifest.status == "published"


# --- fetch, index, enrich, review ---------------------------------------------------------

def fetch_day(day: str, settings: Settings | None = None, sections: list[str] | None = None,
              run_id: str | None = None, *, force: bool = False,
              max_items: int | None = None) -> dict[str, Any]:
    """Fetch the sumario and the selected items of ``day`` (``sections``, at most
    ``max_items`` of them in the sumario's order; ``force``: download again what is stored)
    into the raw store. A day without a BOE is not an error: it is recorded as
    ``no_publication``."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.digest.collect import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_fetch

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "fetch", run_id) as detail:
        store = _store(settings)
        options = FetchOptions.from_settings(settings, sections=sections or None, force=force,
                                             limit=max_items)
        with BoeClient(ClientConfig.from_settings(settings)) as client:
            summary = Fetcher(client, store, options).fetch_day(when)
        result = summary.as_dict()
        detail.update(result)
        with state(settings) as conn:
            record_fetch(conn, when, load_manifest(store, when), result)
        if summary.status == "error":
            raise TaskFailed(f"{day}: {summary.error}")
    return result


def index_day(day: str, settings: Settings | None = None,
              run_id: str | None = None, *, force: bool = False) -> dict[str, Any]:
    """parse → chunk → embed → index every fetched document of ``day``; one bad document
    is recorded (and listed in the digest's incidencias), never fails the day. ``force``
    re-indexes unchanged documents too (enrichment fields are kept)."""
    from boeflow.digest.collect import fetch_records, load_manifest
    from boeflow.index.client import get_client, names_for
    from boeflow.pipeline import fetched_day_files, index_files
    from boeflow.state.db import state
    from boeflow.state.records import record_index

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "index", run_id) as detail:
        if not _published(settings, day):
            detail.update({"day": day, "documents": 0, "note": "no publication"})
            return dict(detail)
        with tempfile.TemporaryDirectory() as workdir:
            files = fetched_day_files(settings, when, when, Path(workdir))
            if not files:
                detail.update({"day": day, "documents": 0, "note": "nothing fetched"})
                return dict(detail)
            report = index_files(files, settings, force=force)
        result = {"day": day, **report.as_dict()}
        detail.update(result)
        manifest = load_manifest(_store(settings), when)
        ids = [i.id for i in manifest.items] if manifest else []
        client = get_client(settings)
        try:
            records = fetch_records(client, names_for(settings), ids)
        finally:
            client.close()
        with state(settings) as conn:
            record_index(conn, when, {i: r.get("content_hash") for i, r in records.items()},
                         dict(report.failed))
        if report.failed and len(report.failed) == report.documents:
            raise TaskFailed(f"{day}: every document failed: {report.failed}")
    return result


def _enrich_documents(day: str, settings: Settings) -> dict[str, Any]:
    """The enrich step's work: ``boeflow.enrich.day.enrich_day`` (issue 11)."""
    from boeflow.enrich.day import enrich_day as run

    return run(date.fromisoformat(day), settings)


def enrich_day(day: str, settings: Settings | None = None,
               run_id: str | None = None) -> dict[str, Any]:
    """Summarise, translate (es→va) and review every fetched document of ``day``, stored on
    its ``boe-documents`` record. Cached: a rerun of a finished day generates nothing."""
    settings = _settings(settings)
    with _recorded(settings, day, "enrich", run_id) as detail:
        if not _published(settings, day):
            detail.update({"day": day, "enriched": [], "needs_attention": [], "failed": {},
                           "note": "no publication"})
            return dict(detail)
        result = _enrich_documents(day, settings)
        detail.update(result)
        if result["failed"] and not result["enriched"]:
            raise TaskFailed(f"{day}: every document failed to enrich: {result['failed']}")
    return result


def review_day(day: str, settings: Settings | None = None,
               run_id: str | None = None, enriched: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """The automatic review's outcome for the day (flags are set by the enrich step's
    checks): recorded per document in PostgreSQL, returned as counts and flagged ids."""
    from boeflow.digest.collect import fetch_records, load_manifest
    from boeflow.enrich.prompts import SUMMARY_PROMPT_VERSION
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import record_enrichments

    settings = _settings(settings)
    when = date.fromisoformat(day)
    failed_enrich = dict((enriched or {}).get("failed") or {})
    with _recorded(settings, day, "review", run_id) as detail:
        manifest = load_manifest(_store(settings), when)
        ids = [i.id for i in manifest.items] if manifest else []
        client = get_client(settings)
        try:
            records = fetch_records(client, names_for(settings), ids)
        finally:
            client.close()
        rows: list[dict[str, Any]] = []
        for boe_id, record in records.items():
            status = record.get("review_status")
            if status is None and boe_id not in failed_enrich:
                continue
            summary = record.get("summary")
            rows.append({
                "boe_id": boe_id, "day": when,
                "summary_status": "ok" if summary else ("failed" if status else "none"),
                "translation_status": "ok" if record.get("title_va") else None,
                "review_status": status or "failed",
                "needs_attention": bool(record.get("needs_attention")),
                "review_reasons": record.get("review_reasons") or [],
                "error": failed_enrich.get(boe_id),
                "summarizer_model": settings.summarizer_model,
                "translator_model": settings.translator_model,
                "prompt_version": SUMMARY_PROMPT_VERSION, "smoke": bool(record.get("smoke"))})
        with state(settings) as conn:
            record_enrichments(conn, when, rows)
        result = {"day": day, "reviewed": len(rows),
                  "needs_attention": sorted(r["boe_id"] for r in rows if r["needs_attention"]),
                  "auto_checked": sum(1 for r in rows if r["review_status"] == "auto_checked"),
                  "failed": sorted(r["boe_id"] for r in rows if r["review_status"] == "failed")}
        detail.update(result)
    return result


# --- the same records for the CLI's steps (a day processed without Airflow) ---------------

def record_fetched(day: str, settings: Settings, summary: Mapping[str, Any]) -> None:
    """What the fetch task records (documents, the day, the task's outcome), for a day
    fetched by ``boeflow fetch``."""
    from boeflow.digest.collect import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_fetch, record_task

    when = date.fromisoformat(day)
    detail = dict(summary)
    with state(settings) as conn:
        record_fetch(conn, when, load_manifest(_store(settings), when), detail)
        record_task(conn, when, "fetch", "failed" if detail.get("status") == "error"
                    else "success", detail=detail, error=detail.get("error"))


def record_indexed(day: str, settings: Settings, failed: Mapping[str, str]) -> None:
    """What the index task records, for a day indexed by ``boeflow index --date``:
    each document's content hash in Elasticsearch, or why it failed."""
    from boeflow.digest.collect import fetch_records, load_manifest
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import record_index, record_task

    when = date.fromisoformat(day)
    manifest = load_manifest(_store(settings), when)
    ids = [i.id for i in manifest.items] if manifest else []
    with get_client(settings) as client:
        records = fetch_records(client, names_for(settings), ids)
    mine = {i: reason for i, reason in failed.items() if i in set(ids)}
    with state(settings) as conn:
        record_index(conn, when, {i: r.get("content_hash") for i, r in records.items()}, mine)
        record_task(conn, when, "index", "failed" if mine and not records else "success",
                    detail={"indexed": len(records), "failed": mine})


def record_enriched(day: str, settings: Settings, result: Mapping[str, Any]) -> None:
    """What the enrich and review tasks record, for a day enriched by ``boeflow enrich``."""
    from boeflow.state.db import state
    from boeflow.state.records import record_task

    when = date.fromisoformat(day)
    failed = dict(result.get("failed") or {})
    with state(settings) as conn:
        record_task(conn, when, "enrich", "failed" if failed and not result.get("enriched")
                    else "success", detail=dict(result), error=result.get("error"))
    if "error" not in result:
        review_day(day, settings, enriched={"failed": failed})


# --- batches: the DAG's per-document work (dynamic task mapping) ---------------------------

LANGUAGES = ("es", "va")
BATCH_LABEL_CHARS = 200  # Airflow keeps at most 250 characters of a rendered map index


def batch_label(ids: list[str]) -> str:
    """The BOE ids of a batch as the Airflow grid shows them (its map index name)."""
    shown: list[str] = []
    for boe_id in ids:
        if shown and len(", ".join([*shown, boe_id])) > BATCH_LABEL_CHARS:
            return f"{', '.join(shown)} … (+{len(ids) - len(shown)})"
        shown.append(boe_id)
    return ", ".join(shown)


def _in_sections(section: str, sections: list[str] | None) -> bool:
    """The sumario's rule: ``2`` selects 2A and 2B, ``5`` selects 5A-5C."""
    if not sections:
        return True
    wanted = {s.strip().upper() for s in sections}
    return section.upper() in wanted or section.upper().rstrip("ABC") in wanted


def plan_batches(day: str, settings: Settings | None = None, *,
                 sections: list[str] | None = None, max_items: int | None = None,
                 batch_size: int | None = None) -> list[dict[str, Any]]:
    """The day's fetched items of ``sections`` (at most ``max_items``, in the sumario's
    order) in batches of ``batch_size`` (``BOEFLOW_AIRFLOW_BATCH_SIZE``): one mapped task per
    batch indexes it, another enriches it. Items that could not be fetched are not planned
    (the digest lists them as incidencias); no publication: no batches."""
    from boeflow.digest.collect import load_manifest

    settings = _settings(settings)
    manifest = load_manifest(_store(settings), date.fromisoformat(day))
    if manifest is None or manifest.status != "published":
        return []
    selected = [item for item in manifest.items if _in_sections(item.section, sections)]
    if max_items is not None:
        selected = selected[:max_items]
    ids = [item.id for item in selected if any(f.ok for f in item.files.values())]
    size = batch_size or settings.airflow_batch_size
    return [{"day": day, "batch": n, "ids": ids[start:start + size],
             "label": batch_label(ids[start:start + size])}
            for n, start in enumerate(range(0, len(ids), size))]


def _batch_files(settings: Settings, when: date, ids: list[str],
                 workdir: Path) -> tuple[list[Path], dict[str, str]]:
    """The stored document file of each id, and the ids that have none."""
    from boeflow.pipeline import fetched_day_files

    wanted = set(ids)
    files = [f for f in fetched_day_files(settings, when, when, workdir) if f.stem in wanted]
    found = {f.stem for f in files}
    return files, {i: "no document file in the raw store" for i in ids if i not in found}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else type(exc).__name__)


def index_batch(day: str, ids: list[str], settings: Settings | None = None,
                batch: int = 0, *, force: bool = False) -> dict[str, Any]:
    """parse → chunk → embed → index the documents ``ids`` of ``day``. A document that
    fails is recorded (digest incidencias) and does not fail the batch; when the batch
    cannot run at all (Elasticsearch down, no model), every id is recorded as failed with
    that line and the task fails, so that Airflow retries it."""
    from boeflow.digest.collect import fetch_records
    from boeflow.index.client import get_client, names_for
    from boeflow.pipeline import index_files
    from boeflow.state.db import state
    from boeflow.state.records import record_index

    settings = _settings(settings)
    when = date.fromisoformat(day)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            files, missing = _batch_files(settings, when, ids, Path(workdir))
            report = index_files(files, settings, force=force) if files else None
        failed = {**missing, **(dict(report.failed) if report else {})}
        with get_client(settings) as client:
            records = fetch_records(client, names_for(settings), ids)
    except Exception as exc:
        message = _one_line(exc)
        with state(settings) as conn:
            record_index(conn, when, {}, {i: message for i in ids})
        raise TaskFailed(f"index {day} batch {batch} ({batch_label(ids)}): {message}") from exc
    indexed = {i: records[i].get("content_hash") for i in ids if i in records and i not in failed}
    with state(settings) as conn:
        record_index(conn, when, indexed, failed)
    return {"day": day, "batch": batch, "ids": ids, "indexed": sorted(indexed),
            "failed": failed, "pid": os.getpid(), "peak_rss_mib": peak_rss_mib(),
            **({k: v for k, v in report.as_dict().items()
                                  if k not in ("failed",)} if report else {})}


def _enrich_ids(day: str, ids: list[str], settings: Settings, languages: list[str],
                force: bool) -> dict[str, Any]:
    """Summarise (es), translate (va, when asked) and review the documents ``ids`` through
    ``boeflow.enrich.day.enrich_documents``: models loaded once per worker, prompts batched
    across the batch's documents, each outcome stored on its ``boe-documents`` record."""
    from boeflow.enrich.day import enrich_and_store
    from boeflow.enrich.source import read_document
    from boeflow.index.client import get_client, names_for

    with tempfile.TemporaryDirectory() as workdir, get_client(settings) as client:
        files, failed = _batch_files(settings, date.fromisoformat(day), ids, Path(workdir))
        docs = []
        for path in files:
            try:
                docs.append(read_document(path))
            except Exception as exc:  # one unreadable document never stops the batch
                failed[path.stem] = f"{type(exc).__name__}: {_one_line(exc)}"[:300]
        stored = enrich_and_store(docs, settings, client, names_for(settings), failed,
                                  force=force, translate="va" in languages)
    return {"enriched": stored.enriched, "needs_attention": stored.needs_attention,
            "generated": stored.generated, "failed": stored.failed}


def enrich_batch(day: str, ids: list[str], settings: Settings | None = None, batch: int = 0,
                 *, languages: list[str] | None = None, force: bool = False
                 ) -> dict[str, Any]:
    """Enrich the documents ``ids`` of ``day`` (stored on their ``boe-documents``
    records; cached, so a rerun generates nothing unless ``force``). Documents that fail
    are recorded with their reason; a batch that cannot run at all fails (Airflow
    retries it) after recording every id as failed."""
    from boeflow.enrich.backends import generate_calls, loads_since, model_loads

    settings = _settings(settings)
    when = date.fromisoformat(day)
    wanted = [lang for lang in (languages or LANGUAGES) if lang in LANGUAGES]
    loads_before, calls_before = model_loads(), generate_calls()
    try:
        result = _enrich_ids(day, ids, settings, wanted, force)
    except Exception as exc:
        message = _one_line(exc)
        result = {"enriched": [], "needs_attention": [], "generated": [],
                  "failed": {i: message for i in ids}}
        _record_enrich_failures(settings, when, result["failed"])
        raise TaskFailed(f"enrich {day} batch {batch} ({batch_label(ids)}): {message}") from exc
    _record_enrich_failures(settings, when, result["failed"])
    calls = {role: n - calls_before.get(role, 0) for role, n in generate_calls().items()
             if n - calls_before.get(role, 0)}
    # Where the work ran and what it cost: the process, its model loads and generate calls,
    # its peak RSS (docs/scale.md reads these from the mapped tasks' results).
    return {"day": day, "batch": batch, "ids": ids, "languages": wanted, **result,
            "smoke": settings.is_smoke, "pid": os.getpid(),
            "model_loads": loads_since(loads_before), "generate_calls": calls,
            "peak_rss_mib": peak_rss_mib()}


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


def close_batches(day: str, settings: Settings | None = None,
                  run_id: str | None = None) -> dict[str, Any]:
    """After the batches (whatever their outcome): record the day's ``index`` and
    ``enrich`` outcome from the per-document rows, then the automatic review. Fails only
    when the day itself was not fetched (no manifest, or the sumario could not be had)."""
    from boeflow.digest.collect import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_task

    settings = _settings(settings)
    when = date.fromisoformat(day)
    manifest = load_manifest(_store(settings), when)
    if manifest is None or manifest.status == "error":
        reason = manifest.error if manifest else "no manifest"
        raise TaskFailed(f"{day} was not fetched ({reason}): nothing to review")
    with state(settings) as conn:
        docs = conn.execute(
            """SELECT boe_id, index_status, index_error FROM documents
               WHERE day = %s AND fetch_status = 'stored'""", (when,)).fetchall()
        enr = conn.execute(
            """SELECT boe_id, error FROM enrichments WHERE day = %s AND error IS NOT NULL""",
            (when,)).fetchall()
        index_failed = {r["boe_id"]: r["index_error"] for r in docs
                        if r["index_status"] == "failed"}
        indexed = sorted(r["boe_id"] for r in docs if r["index_status"] == "indexed")
        record_task(conn, when, "index", "failed" if index_failed and not indexed
                    else "success", detail={"indexed": len(indexed), "failed": index_failed},
                    run_id=run_id)
        enrich_failed = {r["boe_id"]: r["error"] for r in enr}
    if enrich_failed:  # a later attempt that enriched the document wins over its error
        from boeflow.digest.collect import fetch_records
        from boeflow.index.client import get_client, names_for

        with get_client(settings) as client:
            records = fetch_records(client, names_for(settings), sorted(enrich_failed))
        enrich_failed = {i: e for i, e in enrich_failed.items()
                         if not (records.get(i) or {}).get("review_status")}
    titles = _translate_titles(settings, when)
    reviewed = review_day(day, settings, run_id, {"failed": enrich_failed})
    with state(settings) as conn:
        record_task(conn, when, "enrich", "failed" if enrich_failed and not reviewed["reviewed"]
                    else "success", detail={"enriched": reviewed["reviewed"]
                                            - len(reviewed["failed"]),
                                            "failed": enrich_failed}, run_id=run_id)
    return {**reviewed, "indexed": len(indexed), "index_failed": index_failed,
            "enrich_failed": enrich_failed, "titles_va": titles}


def _translate_titles(settings: Settings, when: date) -> dict[str, Any]:
    """Valencian titles of every sumario item (``boeflow.enrich.titles``, cached): a day
    whose titles cannot be translated still gets its digest, with the reason logged once."""
    from boeflow.enrich.titles import translate_titles_of_day

    try:
        return translate_titles_of_day(settings, when)
    except Exception as exc:
        log.error("Valencian titles of %s not translated: %s", when, _one_line(exc))
        return {"error": _one_line(exc)}


# --- digest ------------------------------------------------------------------------------

def build_digest_day(day: str, settings: Settings | None = None,
                     run_id: str | None = None) -> dict[str, Any]:
    """Build the draft digest, store it under ``digests/…/draft/`` and say whether it needs
    a reviewer: not when there is no publication, nor when exactly this draft is already
    published."""
    from boeflow.digest.build import build_draft
    from boeflow.digest.collect import collect, hybrid_query
    from boeflow.digest.publish import write_digest
    from boeflow.digest.render import review_body
    from boeflow.digest.watchlists import load_watchlists, run_watchlists
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import latest_digest, update_day

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "build_digest", run_id) as detail:
        store = _store(settings)
        names = names_for(settings)
        watchlists = load_watchlists(settings.digest_watchlists_file)
        with get_client(settings) as client, state(settings) as conn:
            inputs = collect(when, settings, store, client, names, conn)
            from boeflow.links import refresh_links

            detail["links"] = refresh_links(when, settings, store, client, names, inputs.records)
            draft = build_draft(inputs, smoke=settings.is_smoke)
            if watchlists and draft.status == "draft":
                query = (hybrid_query(settings, client, names)
                         if any(w.query for w in watchlists) else None)
                draft.watchlists = run_watchlists(draft, watchlists, inputs.records, query)
                from boeflow.digest.build import draft_hash

                draft.draft_hash = draft_hash(draft)
            paths = write_digest(store, draft, draft=True)
            published = latest_digest(conn, when)
            already = bool(published and published["draft_hash"] == draft.draft_hash)
            if draft.status == "no_publication":
                update_day(conn, when, status="no_publication", digest_status=None)
            elif not already:
                update_day(conn, when, digest_status="awaiting_review")
        result = {
            "day": day, "status": draft.status, "draft_hash": draft.draft_hash,
            "draft_paths": paths, "items": draft.header.items,
            "needs_attention": [i.boe_id for i in draft.flagged()],
            "incidencias": len(draft.incidencias),
            "already_published": already,
            "published_version": published["version"] if published else None,
            "needs_review": draft.status == "draft" and not already,
            "review_body": review_body(draft, store.path(paths["html"])),
        }
        detail.update({k: v for k, v in result.items() if k != "review_body"})
    return result


def review_from_hitl(response: Mapping[str, Any] | None, publish_on_timeout: bool,
                     shown_hash: str | None = None) -> dict[str, Any] | None:
    """The reviewer's answer from the Airflow approval step's result, in the form
    ``publish_day`` validates (``boeflow.digest.decision.answer_from_hitl``); None when the
    step did not ask (nothing to review)."""
    from boeflow.digest.decision import DecisionError, answer_from_hitl

    try:
        return answer_from_hitl(response, publish_on_timeout, shown_hash)
    except DecisionError as exc:
        raise TaskFailed(str(exc)) from None


_LOCK_SPACE = 0x626F65  # "boe"
_FEED_LOCK = 0  # the feed is shared by every day


@contextmanager
def _publication_lock(settings: Settings, when: date | None) -> Iterator[None]:
    """One publisher per day at a time (an Airflow retry and the CLI, say), or with
    ``when=None`` one feed writer at a time (waiting for it): a PostgreSQL session lock,
    released when the process ends however it ends."""
    from boeflow.state.db import connect

    conn = connect(settings)
    try:
        conn.autocommit = True
        if when is None:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_SPACE, _FEED_LOCK))
        else:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok",
                               (_LOCK_SPACE, int(when.strftime("%Y%m%d")))).fetchone()
            if not (row and row["ok"]):
                raise TaskFailed(f"another publication of {when} is running; try again when "
                                 "it has finished")
        yield
    finally:
        conn.close()


def publish_day(day: str, settings: Settings | None = None,
                answer: Mapping[str, Any] | Decision | None = None,
                run_id: str | None = None, reviewer_id: str | None = None) -> dict[str, Any]:
    """Publish the reviewed draft, exactly once.

    ``answer`` (the HITL answer, ``boeflow digest approve``, or an already validated
    ``Decision``) is validated against the draft on disk (``validate_decision``: the draft it
    names by hash, its ids and keys): anything wrong refuses it with one line, nothing
    published. Then, in this order, each step idempotent:

    1. the decision is recorded once and the new version decided (``digests`` row
       ``publishing``), in one transaction;
    2. the version's files are written under ``digests/…/vN/``;
    3. the pointer ``current.json`` is switched to it (one atomic rename: the commit point);
    4. ``boe-digests``, the Atom feed, and the ``digests`` row (``published``) follow.

    A crash anywhere leaves the old version (before 3) or the new one (after) complete, and
    the next run (with the same answer, or none) finishes that same version. A decision
    whose content equals the published version's publishes nothing (no new version). A
    rejection (or a timeout without ``digest_publish_on_timeout``) is recorded and publishes
    nothing. A failure (full disk, Elasticsearch refusing) leaves the day
    ``publish_failed`` with one line, and the published version intact."""
    from boeflow.digest.publish import read_digest

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "publish", run_id) as detail:
        store = _store(settings)
        draft = read_digest(store, when, draft=True)
        if draft is None:
            raise TaskFailed(f"no draft digest for {day}: run build_digest first")
        if draft.status == "no_publication":
            detail.update({"day": day, "published": False, "reason": "no_publication"})
            return dict(detail)
        with _publication_lock(settings, when):
            detail.update(_publish(settings, store, draft, answer, run_id, reviewer_id))
    return dict(detail)


def _publish(settings: Settings, store: Any, draft: Any,
             answer: Mapping[str, Any] | Decision | None, run_id: str | None,
             reviewer_id: str | None) -> dict[str, Any]:
    from boeflow.digest.decision import DecisionError, decision_from_row, validate_decision
    from boeflow.digest.publish import read_pointer
    from boeflow.state.db import state
    from boeflow.state.records import (
        abandon_publication,
        decision_row,
        latest_digest,
        publishing_digest,
        record_decision,
        start_publication,
        update_day,
    )

    when = draft.date
    day = when.isoformat()
    with state(settings) as conn:
        pending = publishing_digest(conn, when)
        pending_decision = (decision_row(conn, int(pending["decision_id"]))
                            if pending and pending["decision_id"] else None)
    pointer = read_pointer(store, when)
    finished: dict[str, Any] | None = None
    if pending is not None and pointer is not None and pointer.version == pending["version"]:
        # Switched to but not finished (a crash, a refusal): readers already get this
        # version, so it is finished first, whatever is asked now.
        finished = {**_finish_version(settings, store, when, int(pending["version"])),
                    "resumed": True}
        pending = None
    try:
        if answer is None:
            if pending is not None and pending_decision is not None:
                decision = decision_from_row(day, pending_decision)
            elif finished is not None:
                return finished
            else:
                with state(settings) as conn:
                    previous = latest_digest(conn, when)
                    same = previous is not None and previous["draft_hash"] == draft.draft_hash
                    if same:  # a rerun of a published day (its fetch set it back to pending)
                        update_day(conn, when, status="published", digest_status="published")
                return {"day": day, "published": False,
                        "reason": "already_published" if same else "not_reviewed",
                        "version": previous["version"] if previous else None}
        elif isinstance(answer, Decision):
            decision = answer
        else:
            decision = validate_decision(draft, {"reviewer_id": reviewer_id, **answer})
        if decision.draft_hash != draft.draft_hash:
            raise DecisionError(f"draft_hash: the decision answers draft "
                                f"{decision.draft_hash[:12]}…, but the draft of {day} is now "
                                f"{draft.draft_hash[:12]}…: review the current draft")
    except DecisionError as exc:
        raise TaskFailed(f"decision on {day} refused: {exc}") from None
    content_key = decision.content_key()
    with state(settings) as conn:
        current = latest_digest(conn, when)
        if decision.publishes and pending is None and current is not None \
                and current["content_key"] == content_key:
            if finished is not None and finished["version"] == current["version"]:
                return {**finished, "resumed": True}  # this very decision, now finished
            update_day(conn, when, status="published", digest_status="published")
            return {"day": day, "published": False, "reason": "already_published",
                    "version": current["version"], **_decision_fields(decision)}
        decision_id, decided_at = record_decision(conn, when, decision, run_id)
        decision = decision.model_copy(update={"decided_at": decided_at})
        if not decision.publishes:
            return {"day": day, "published": False, "reason": decision.decision,
                    "decision_id": decision_id,
                    "version": current["version"] if current else None}
        if pending is not None and pending["content_key"] != content_key:
            abandon_publication(conn, when, int(pending["version"]))  # never switched to
            pending = None
        version = int(pending["version"]) if pending is not None else start_publication(
            conn, when, draft_hash=draft.draft_hash, content_key=content_key,
            decision_id=decision_id, without_review=decision.decision == "without_review")
    result = _write_version(settings, store, draft, decision, version, current)
    return {**result, "decision_id": decision_id}


def _decision_fields(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.decision, "reviewer": decision.reviewer,
            "excluded": list(decision.excluded), "edited": decision.edited,
            "draft_hash": decision.draft_hash}


def _failed(settings: Settings, when: date, version: int, exc: BaseException,
            current: Mapping[str, Any] | None, switched: bool) -> TaskFailed:
    """Record why ``version`` stopped, and the one line saying where the day stands."""
    from boeflow.state.db import state
    from boeflow.state.records import fail_publication

    line = _one_line(exc)
    with state(settings) as conn:
        fail_publication(conn, when, version, line)
    if switched:
        where = (f"its files are published, the rest is not: run `boeflow digest publish "
                 f"--date {when}` to finish v{version}")
    else:
        where = (f"the published version (v{current['version']}) is unchanged" if current
                 else "nothing is published")
    return TaskFailed(f"publish {when} v{version} failed: {line}; {where}")


def _write_version(settings: Settings, store: Any, draft: Any, decision: Decision,
                   version: int, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """Steps 2-4 of ``publish_day`` for a decided ``version``."""
    from boeflow.digest.build import apply_review
    from boeflow.digest.collect import edit_checker
    from boeflow.digest.publish import (
        Pointer,
        read_pointer,
        remove_stale_temps,
        switch_version,
        write_digest,
    )
    from boeflow.index.client import get_client, names_for

    when = draft.date
    pointer = read_pointer(store, when)
    if pointer is None or pointer.version != version:
        try:
            with get_client(settings) as client:
                final = apply_review(draft, decision.review_input(),
                                     edit_checker(settings, client, names_for(settings)))
            final.version = version
            remove_stale_temps(store, when, version)
            paths = write_digest(store, final)
            switch_version(store, when, Pointer(version=version, draft_hash=draft.draft_hash,
                                                content_key=decision.content_key(),
                                                paths=paths))
        except Exception as exc:
            raise _failed(settings, when, version, exc, current, switched=False) from exc
    return _finish_version(settings, store, when, version, current)


def _finish_version(settings: Settings, store: Any, when: date, version: int,
                    current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Bring Elasticsearch, the feed and PostgreSQL to the switched-to ``version``."""
    from boeflow.digest.build import draft_hash as content_hash
    from boeflow.digest.calendar import write_calendars
    from boeflow.digest.publish import (
        digest_prefix,
        index_digest,
        read_version,
        version_paths,
        write_feed,
    )
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import finish_publication

    final = read_version(store, when, version)
    paths = version_paths(when, version)
    try:
        if final is None:
            raise TaskFailed(f"version {version} of {when} is named by the pointer but its "
                             "digest.json is missing")
        with get_client(settings) as client:
            index_digest(client, names_for(settings), final, paths)
        with _publication_lock(settings, None):
            write_feed(store, settings.digest_feed_url, settings.digest_site_url)
            # the current version's deadlines: digests/…/plazos.ics and the rolling calendar
            write_calendars(store, final, digest_prefix(when))
        with state(settings) as conn:
            finish_publication(conn, when, version, content_hash=content_hash(final),
                               paths=paths, items=final.header.items,
                               excluded=final.header.excluded)
    except Exception as exc:
        raise _failed(settings, when, version, exc, current, switched=True) from exc
    decision = final.decision
    return {"day": when.isoformat(), "published": True, "version": version, "paths": paths,
            "full_paths": {k: store.path(v) for k, v in paths.items()},
            "decision": decision.decision if decision else None,
            "reviewer": decision.reviewer if decision else None,
            "excluded": [e.boe_id for e in final.excluded],
            "edited": decision.edited if decision else [],
            "draft_hash": final.draft_hash}


def message_id(day: date, version: int, channel: str, recipient: str) -> str:
    """The Message-ID of one digest e-mail: the same for every attempt, so a resent copy
    (after a crash between SMTP's acceptance and the record) is recognisably the same."""
    import hashlib

    tag = hashlib.sha256(f"{channel}\n{recipient}".encode()).hexdigest()[:20]
    return f"<boeflow.{day:%Y%m%d}.v{version}.{tag}@boeflow.local>"


# Sends one boeflow.digest.mail.OutgoingMail; may return what closes the session, called
# once the delivery is recorded.
Sender = Callable[[Any], Any]


def deliver_day(day: str, settings: Settings | None = None, send: Sender | None = None,
                run_id: str | None = None) -> dict[str, Any]:
    """E-mail the latest published version to each recipient once: one message per
    (day, version, channel, recipient), recorded ``sending`` just before it is handed to
    SMTP and ``sent`` once accepted; a rerun sends nothing already sent. A failed recipient
    is recorded and the task fails (Airflow retries it); the digest stays published."""
    from boeflow.digest.mail import digest_mails
    from boeflow.digest.publish import read_version
    from boeflow.digest.watchlists import load_watchlists
    from boeflow.state.db import state
    from boeflow.state.records import delivery, latest_digest, record_delivery

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "deliver", run_id) as detail:
        with state(settings) as conn:
            published = latest_digest(conn, when)
        if published is None:
            detail.update({"day": day, "sent": [], "skipped": [], "note": "nothing published"})
            return dict(detail)
        version = int(published["version"])
        digest = read_version(_store(settings), when, version)
        if digest is None:
            raise TaskFailed(f"published digest {day} v{version} missing from the raw store")
        mails = digest_mails(digest, settings.digest_recipients,
                             load_watchlists(settings.digest_watchlists_file))
        sent: list[str] = []
        skipped: list[str] = []
        failed: dict[str, str] = {}
        for group in mails:
            for recipient in group.recipients:
                label = f"{group.channel}:{recipient}"
                with state(settings) as conn:
                    done = delivery(conn, when, version, group.channel, recipient)
                if done and done["status"] == "sent":
                    skipped.append(label)
                    continue
                if send is None:
                    raise TaskFailed("no mail sender configured")
                mail = group.to(recipient, message_id(when, version, group.channel, recipient))
                with state(settings) as conn:
                    record_delivery(conn, when, version, group.channel, recipient,
                                    status="sending", subject=mail.subject,
                                    message_id=mail.message_id or "")
                error = None
                finish: Any = None
                with state(settings) as conn:
                    try:
                        # "sent" is written first and committed the moment SMTP accepts the
                        # message: a crash can only fall between the server's answer and
                        # this commit (one round trip) to leave a sent message unrecorded.
                        with conn.transaction():
                            record_delivery(conn, when, version, group.channel, recipient,
                                            status="sent", subject=mail.subject,
                                            message_id=mail.message_id or "")
                            finish = send(mail)
                    except Exception as exc:  # recorded, then retried by Airflow
                        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                        failed[label] = error
                        record_delivery(conn, when, version, group.channel, recipient,
                                        status="failed", subject=mail.subject,
                                        message_id=mail.message_id or "", error=error)
                if callable(finish):  # the rest of the SMTP session, once recorded
                    finish()
                if error is None:
                    sent.append(label)
        detail.update({"day": day, "version": version, "sent": sent, "skipped": skipped,
                       "failed": failed})
        if failed:
            raise TaskFailed(f"delivery of {day} v{version} failed for "
                             f"{', '.join(failed)}: {next(iter(failed.values()))}")
    return dict(detail)


def record_approval_skipped(day: str, settings: Settings | None, reason: str,
                            run_id: str | None = None) -> None:
    """The approval step had nothing to ask (no publication, or already published)."""
    from boeflow.state.db import state
    from boeflow.state.records import record_task

    settings = _settings(settings)
    with state(settings) as conn:
        record_task(conn, date.fromisoformat(day), "approve", "skipped",
                    detail={"reason": reason}, run_id=run_id)
