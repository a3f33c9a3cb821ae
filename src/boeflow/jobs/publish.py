"""The publish step: a reviewed draft validated against the reviewer's decision and
published as a new version of the day's digest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.digest.decision import PUBLISH, REJECT, Decision
from boeflow.jobs.common import TaskFailed, owns_resources, raw_store, recorded, resolve_settings
from boeflow.jobs.results import Published

APPROVAL_OPTIONS = [PUBLISH, REJECT]


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
    ``when=None`` one feed writer at a time (waiting for it): a PostgreSQL session lock on
    the task's connection, released on exit, or when the connection ends however it ends."""
    import psycopg

    from boeflow.state.db import StateError, pg_session, state
    from boeflow.state.records import session_lock, session_unlock

    key = _FEED_LOCK if when is None else int(when.strftime("%Y%m%d"))
    with pg_session(settings):
        with state(settings) as conn:
            if not session_lock(conn, _LOCK_SPACE, key, wait=when is None):
                raise TaskFailed(f"another publication of {when} is running; try again "
                                 "when it has finished")
        try:
            yield
        finally:
            try:
                with state(settings) as conn:
                    session_unlock(conn, _LOCK_SPACE, key)
            except (StateError, psycopg.Error):
                pass  # the connection is gone, and its session lock with it


@owns_resources
def publish_day(day: str, settings: Settings | None = None,
                answer: Mapping[str, Any] | Decision | None = None,
                run_id: str | None = None, reviewer_id: str | None = None) -> Published:
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

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    with recorded(settings, day, "publish", run_id) as detail:
        store = raw_store(settings)
        draft = read_digest(store, when, draft=True)
        if draft is None:
            raise TaskFailed(f"no draft digest for {day}: run build_digest first")
        if draft.status == "no_publication":
            result = Published(day=day, published=False, reason="no_publication")
        else:
            with _publication_lock(settings, when):
                result = _publish(settings, store, draft, answer, run_id, reviewer_id)
        detail.update(result.to_json())
    return result


def _publish(settings: Settings, store: Any, draft: Any,
             answer: Mapping[str, Any] | Decision | None, run_id: str | None,
             reviewer_id: str | None) -> Published:
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
    finished: Published | None = None
    if pending is not None and pointer is not None and pointer.version == pending["version"]:
        # Switched to but not finished (a crash, a refusal): readers already get this
        # version, so it is finished first, whatever is asked now.
        finished = _finish_version(settings, store, when, int(pending["version"]))
        finished = finished.model_copy(update={"resumed": True})
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
                return Published(day=day, published=False,
                                 reason="already_published" if same else "not_reviewed",
                                 version=previous["version"] if previous else None)
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
            if finished is not None and finished.version == current["version"]:
                return finished  # this very decision, now finished
            update_day(conn, when, status="published", digest_status="published")
            return Published(day=day, published=False, reason="already_published",
                             version=current["version"], decision=decision.decision,
                             reviewer=decision.reviewer, excluded=list(decision.excluded),
                             edited=decision.edited, draft_hash=decision.draft_hash)
        decision_id, decided_at = record_decision(conn, when, decision, run_id)
        decision = decision.model_copy(update={"decided_at": decided_at})
        if not decision.publishes:
            return Published(day=day, published=False, reason=decision.decision,
                             decision_id=decision_id,
                             version=current["version"] if current else None)
        if pending is not None and pending["content_key"] != content_key:
            abandon_publication(conn, when, int(pending["version"]))  # never switched to
            pending = None
        version = int(pending["version"]) if pending is not None else start_publication(
            conn, when, draft_hash=draft.draft_hash, content_key=content_key,
            decision_id=decision_id, without_review=decision.decision == "without_review")
    result = _write_version(settings, store, draft, decision, version, current)
    return result.model_copy(update={"decision_id": decision_id})


def _failed(settings: Settings, when: date, version: int, exc: BaseException,
            current: Mapping[str, Any] | None, switched: bool) -> TaskFailed:
    """Record why ``version`` stopped, and the one line saying where the day stands."""
    from boeflow.state.db import state
    from boeflow.state.records import fail_publication

    line = one_line(exc)
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
                   version: int, current: Mapping[str, Any] | None) -> Published:
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
    from boeflow.index.client import es_session, names_for

    when = draft.date
    pointer = read_pointer(store, when)
    if pointer is None or pointer.version != version:
        try:
            with es_session(settings) as client:
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
                    current: Mapping[str, Any] | None = None) -> Published:
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
    from boeflow.index.client import es_session, names_for
    from boeflow.state.db import state
    from boeflow.state.records import finish_publication

    final = read_version(store, when, version)
    paths = version_paths(when, version)
    try:
        if final is None:
            raise TaskFailed(f"version {version} of {when} is named by the pointer but its "
                             "digest.json is missing")
        with es_session(settings) as client:
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
    return Published(day=when.isoformat(), published=True, version=version, paths=paths,
                     full_paths={k: store.path(v) for k, v in paths.items()},
                     decision=decision.decision if decision else None,
                     reviewer=decision.reviewer if decision else None,
                     excluded=[e.boe_id for e in final.excluded],
                     edited=decision.edited if decision else [],
                     draft_hash=final.draft_hash)


@owns_resources
def record_approval_skipped(day: str, settings: Settings | None, reason: str,
                            run_id: str | None = None) -> None:
    """The approval step had nothing to ask (no publication, or already published)."""
    from boeflow.state.db import state
    from boeflow.state.records import record_task

    settings = resolve_settings(settings)
    with state(settings) as conn:
        record_task(conn, date.fromisoformat(day), "approve", "skipped",
                    detail={"reason": reason}, run_id=run_id)
