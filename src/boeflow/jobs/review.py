"""The review step: the automatic review of the day's enriched documents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from boeflow.core.settings import Settings
from boeflow.jobs.common import owns_resources, raw_store, recorded, resolve_settings
from boeflow.jobs.results import Reviewed


@owns_resources
def review_day(day: str, settings: Settings | None = None,
               run_id: str | None = None, enrich_failed: Mapping[str, str] | None = None
               ) -> Reviewed:
    """The automatic review's outcome for the day (flags are set by the enrich step's
    checks): recorded per document in PostgreSQL, returned as counts and flagged ids.
    ``enrich_failed``: the documents the enrich step could not enrich, with the reason."""
    from boeflow.boe.store import load_manifest
    from boeflow.digest.collect import fetch_records
    from boeflow.enrich.prompts import SUMMARY_PROMPT_VERSION
    from boeflow.index.client import es_session, names_for
    from boeflow.state.db import state
    from boeflow.state.records import record_enrichments

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    failed_enrich = dict(enrich_failed or {})
    with recorded(settings, day, "review", run_id) as detail:
        manifest = load_manifest(raw_store(settings), when)
        ids = [i.id for i in manifest.items] if manifest else []
        with es_session(settings) as client:
            records = fetch_records(client, names_for(settings), ids)
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
        result = Reviewed(
            day=day, reviewed=len(rows),
            needs_attention=sorted(r["boe_id"] for r in rows if r["needs_attention"]),
            auto_checked=sum(1 for r in rows if r["review_status"] == "auto_checked"),
            failed=sorted(r["boe_id"] for r in rows if r["review_status"] == "failed"))
        detail.update(result.to_json())
    return result
