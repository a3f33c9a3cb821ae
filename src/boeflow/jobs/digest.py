"""The digest step: the day's draft digest built from its records, with Valencian titles."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.jobs.common import owns_resources, raw_store, recorded, resolve_settings
from boeflow.jobs.results import Built

log = logging.getLogger(__name__)


def translate_titles(settings: Settings, when: date) -> dict[str, Any]:
    """Valencian titles of every sumario item (``boeflow.enrich.titles``, cached): a day
    whose titles cannot be translated still gets its digest, with the reason logged once."""
    from boeflow.enrich.titles import translate_titles_of_day

    try:
        return translate_titles_of_day(settings, when)
    except Exception as exc:
        log.error("Valencian titles of %s not translated: %s", when, one_line(exc))
        return {"error": one_line(exc)}


@owns_resources
def build_digest_day(day: str, settings: Settings | None = None,
                     run_id: str | None = None) -> Built:
    """Build the draft digest, store it under ``digests/…/draft/`` and say whether it needs
    a reviewer: not when there is no publication, nor when exactly this draft is already
    published."""
    from boeflow.digest.build import build_draft
    from boeflow.digest.collect import collect, hybrid_query
    from boeflow.digest.publish import write_digest
    from boeflow.digest.render import review_body
    from boeflow.digest.watchlists import load_watchlists, run_watchlists
    from boeflow.index.client import es_session, names_for
    from boeflow.state.db import state
    from boeflow.state.records import latest_digest, recorded_failures, update_day

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    with recorded(settings, day, "build_digest", run_id) as detail:
        store = raw_store(settings)
        names = names_for(settings)
        watchlists = load_watchlists(settings.digest_watchlists_file)
        with es_session(settings) as client, state(settings) as conn:
            inputs = collect(when, settings, store, client, names, recorded_failures(conn, when))
            from boeflow.enrich.links import refresh_links

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
        result = Built(
            day=day, status=draft.status, draft_hash=draft.draft_hash, draft_paths=paths,
            items=draft.header.items, needs_attention=[i.boe_id for i in draft.flagged()],
            incidencias=len(draft.incidencias), already_published=already,
            published_version=published["version"] if published else None,
            needs_review=draft.status == "draft" and not already,
            review_body=review_body(draft, store.path(paths["html"])))
        detail.update(result.model_dump(mode="json", exclude={"review_body"}))
    return result
