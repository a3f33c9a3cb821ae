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

import os
import resource
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from boeflow.config import Settings, get_settings
from boeflow.digest.build import ReviewInput

PUBLISH = "Publicar"
REJECT = "Rechazar"
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
        with state(settings) as conn:
            record_task(conn, when, task, "failed", detail=detail, error=message, run_id=run_id)
        if isinstance(exc, TaskFailed):
            raise
        raise TaskFailed(f"{task} {day}: {message}") from exc
    with state(settings) as conn:
        record_task(conn, when, task, detail.pop("_status", "success"), detail=detail,
                    run_id=run_id)


def _settings(settings: Settings | None) -> Settings:
    return settings or get_settings()


BOE_TIMEZONE = "Europe/Madrid"


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
              run_id: str | None = None) -> dict[str, Any]:
    """parse → chunk → embed → index every fetched document of ``day``; one bad document
    is recorded (and listed in the digest's incidencias), never fails the day."""
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
            report = index_files(files, settings)
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
                batch: int = 0) -> dict[str, Any]:
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
            report = index_files(files, settings) if files else None
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
            "failed": stored.failed}


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
        result = {"enriched": [], "needs_attention": [], "failed": {i: message for i in ids}}
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
    reviewed = review_day(day, settings, run_id, {"failed": enrich_failed})
    with state(settings) as conn:
        record_task(conn, when, "enrich", "failed" if enrich_failed and not reviewed["reviewed"]
                    else "success", detail={"enriched": reviewed["reviewed"]
                                            - len(reviewed["failed"]),
                                            "failed": enrich_failed}, run_id=run_id)
    return {**reviewed, "indexed": len(indexed), "index_failed": index_failed,
            "enrich_failed": enrich_failed}


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


def review_from_hitl(response: Mapping[str, Any] | None, publish_on_timeout: bool
                     ) -> ReviewInput | None:
    """The reviewer's answer from the Airflow approval step's result (``chosen_options``,
    ``params_input``, ``responded_by_user``, ``responded_at``); None when the step did not
    ask (nothing to review)."""
    if not response:
        return None
    chosen = list(response.get("chosen_options") or [])
    params = dict(response.get("params_input") or {})
    user = response.get("responded_by_user") or None
    at = response.get("responded_at")
    decided = (datetime.fromisoformat(at) if isinstance(at, str) else
               at if isinstance(at, datetime) else datetime.now().astimezone())
    if user is None:  # nobody answered: Airflow applied the defaults after response_timeout
        decision = "without_review" if publish_on_timeout and chosen == [PUBLISH] else "timed_out"
        return ReviewInput(decision=decision, reviewer=None, decided_at=decided,  # type: ignore[arg-type]
                           note="sin respuesta del revisor en el plazo configurado")
    excluded = params.get("excluir") or []
    if isinstance(excluded, str):
        excluded = [part for part in excluded.replace(",", " ").split() if part]
    edits = params.get("correcciones") or {}
    notes = params.get("notas") or {}
    return ReviewInput(
        decision="approved" if chosen == [PUBLISH] else "rejected",
        reviewer=str(user.get("name") or user.get("id")), decided_at=decided,
        note=str(params.get("nota") or "").strip() or None,
        excluded=[str(e).strip() for e in excluded if str(e).strip()],
        edits={str(k).strip(): str(v) for k, v in dict(edits).items()},
        notes={str(k).strip(): str(v) for k, v in dict(notes).items() if str(v).strip()})


def publish_day(day: str, settings: Settings | None = None,
                review: ReviewInput | None = None, run_id: str | None = None,
                reviewer_id: str | None = None) -> dict[str, Any]:
    """Publish the reviewed draft: Markdown/HTML/JSON in the raw store, ``boe-digests``, the
    Atom feed and the decision in PostgreSQL. A rejection (or a timeout without
    ``digest_publish_on_timeout``) publishes nothing and leaves the day pending."""
    from boeflow.digest.build import apply_review, unknown_ids
    from boeflow.digest.collect import edit_checker
    from boeflow.digest.publish import index_digest, read_digest, write_digest, write_feed
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import (
        latest_digest,
        record_decision,
        record_digest,
        update_day,
    )

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
        with state(settings) as conn:
            previous = latest_digest(conn, when)
        if review is None:
            same = previous is not None and previous["draft_hash"] == draft.draft_hash
            if same:  # a rerun of a published day (its fetch set the day back to pending)
                with state(settings) as conn:
                    update_day(conn, when, status="published", digest_status="published")
            detail.update({"day": day, "published": False,
                           "reason": "already_published" if same else "not_reviewed",
                           "version": previous["version"] if previous else None})
            return dict(detail)
        ignored = unknown_ids(draft, review)
        with state(settings) as conn:
            decision_id = record_decision(
                conn, when, decision=review.decision, reviewer=review.reviewer,
                reviewer_id=reviewer_id, decided_at=review.decided_at or datetime.now()
                .astimezone(), excluded=review.excluded,
                edits={k: {"resumen": v} for k, v in review.edits.items()}, note=review.note,
                run_id=run_id, draft_hash=draft.draft_hash)
        if review.decision in ("rejected", "timed_out"):
            detail.update({"day": day, "published": False, "reason": review.decision,
                           "decision_id": decision_id})
            return dict(detail)
        names = names_for(settings)
        with get_client(settings) as client:
            final = apply_review(draft, review, edit_checker(settings, client, names))
            with state(settings) as conn:
                version = (previous["version"] if previous else 0) + 1
                final.version = version
                paths = write_digest(store, final)
                index_digest(client, names, final, paths)
                write_feed(store, settings.digest_feed_url, settings.digest_site_url)
                from boeflow.digest.build import draft_hash as _hash

                record_digest(conn, when, draft_hash=draft.draft_hash,
                              content_hash=_hash(final), decision_id=decision_id,
                              without_review=review.decision == "without_review",
                              paths=paths, items=final.header.items,
                              excluded=final.header.excluded)
        result = {"day": day, "published": True, "version": version, "paths": paths,
                  "full_paths": {k: store.path(v) for k, v in paths.items()},
                  "decision": review.decision, "reviewer": review.reviewer,
                  "excluded": [e.boe_id for e in final.excluded],
                  "edited": final.decision.edited if final.decision else [],
                  "ignored_ids": ignored, "decision_id": decision_id}
        detail.update(result)
    return result


Sender = Callable[[Any], None]  # sends one boeflow.digest.mail.OutgoingMail


def deliver_day(day: str, settings: Settings | None = None, send: Sender | None = None,
                run_id: str | None = None) -> dict[str, Any]:
    """E-mail the latest published digest to each recipient list once. A failed list is
    recorded and the task fails (Airflow retries it); the digest stays published."""
    from boeflow.digest.mail import digest_mails
    from boeflow.digest.publish import read_digest
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
        digest = read_digest(_store(settings), when)
        if digest is None or digest.version != version:
            raise TaskFailed(f"published digest {day} v{version} missing from the raw store")
        mails = digest_mails(digest, settings.digest_recipients,
                             load_watchlists(settings.digest_watchlists_file))
        sent: list[str] = []
        skipped: list[str] = []
        failed: dict[str, str] = {}
        for mail in mails:
            with state(settings) as conn:
                done = delivery(conn, when, version, mail.channel)
            if done and done["status"] == "sent":
                skipped.append(mail.channel)
                continue
            if send is None:
                raise TaskFailed("no mail sender configured")
            error = None
            try:
                send(mail)
            except Exception as exc:  # recorded, then retried by Airflow
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                failed[mail.channel] = error
            with state(settings) as conn:
                record_delivery(conn, when, version, mail.channel, recipients=mail.recipients,
                                subject=mail.subject, error=error)
            if error is None:
                sent.append(mail.channel)
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
