"""The daily job, one plain function per step: ``which_day → fetch → index → enrich → review →
build_digest → approve → publish → deliver``.

The Airflow DAGs (``dags/boe_daily.py``, ``dags/boe_digest.py``), the CLI and the demo all
call these. Each takes the day as ISO text, a ``Settings`` (so Airflow glue can build them
from Connections) and plain JSON values, returns a JSON-serialisable dict, and records its
outcome for the day in PostgreSQL (``task_runs``), so "what is done and what failed on day D"
is one query (``boeflow status --date D``). Every step is idempotent: a rerun of a finished
day downloads nothing, does no model work, publishes nothing new and sends no second e-mail.
"""

from __future__ import annotations

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


def resolve_day(requested: str | None, logical_date: str | None) -> str:
    """The BOE day a run works on: the one asked for in the trigger form, else the run's
    logical date. Returned as ISO ``YYYY-MM-DD``."""
    value = requested or logical_date
    if not value:
        raise TaskFailed("no date: pass `date` in the run parameters")
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise TaskFailed(f"not a date: {value!r} (expected YYYY-MM-DD)") from None


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
              run_id: str | None = None) -> dict[str, Any]:
    """Fetch the sumario and the selected items of ``day`` into the raw store. A day without
    a BOE is not an error: it is recorded as ``no_publication``."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.digest.collect import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_fetch

    settings = _settings(settings)
    when = date.fromisoformat(day)
    with _recorded(settings, day, "fetch", run_id) as detail:
        store = _store(settings)
        options = FetchOptions.from_settings(settings, sections=sections)
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
    from boeflow.state.records import latest_digest, record_decision, record_digest

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
