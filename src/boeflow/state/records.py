"""What each stage records in PostgreSQL, and the one query behind ``boeflow status``.

Plain SQL over the tables of ``sql/001_init.sql``; every write is an upsert keyed by the day,
the BOE id or (day, version), so rerunning a task rewrites its rows instead of adding more.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from boeflow.boe.manifest import DayManifest
from boeflow.digest.decision import Decision
from boeflow.digest.model import Stage
from boeflow.state.db import Connection, jsonb


def ensure_day(conn: Connection, day: date) -> None:
    conn.execute("INSERT INTO days (day) VALUES (%s) ON CONFLICT (day) DO NOTHING", (day,))


def record_task(conn: Connection, day: date, task: str, status: str, *,
                detail: dict[str, Any] | None = None, error: str | None = None,
                run_id: str | None = None) -> None:
    """The latest outcome of one task of the daily DAG for ``day``."""
    ensure_day(conn, day)
    finished = None if status == "running" else datetime.now().astimezone()
    conn.execute(
        """INSERT INTO task_runs (day, task, status, run_id, detail, error, started_at,
                                  finished_at)
           VALUES (%s, %s, %s, %s, %s, %s, now(), %s)
           ON CONFLICT (day, task) DO UPDATE SET
               status = EXCLUDED.status, run_id = COALESCE(EXCLUDED.run_id, task_runs.run_id),
               detail = EXCLUDED.detail, error = EXCLUDED.error,
               started_at = CASE WHEN EXCLUDED.status = 'running' THEN now()
                                 ELSE task_runs.started_at END,
               finished_at = EXCLUDED.finished_at""",
        (day, task, status, run_id, jsonb(detail or {}), error, finished))


def update_day(conn: Connection, day: date, **fields: Any) -> None:
    """Set columns of ``days`` (names are fixed by the callers, values are parameters)."""
    allowed = {"status", "boe_number", "items", "fetched", "indexed", "enriched",
               "needs_attention", "failed", "digest_status"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown day fields: {sorted(unknown)}")
    ensure_day(conn, day)
    if not fields:
        return
    assignments = ", ".join(f"{name} = %({name})s" for name in sorted(fields))
    conn.execute(f"UPDATE days SET {assignments}, updated_at = now() "  # noqa: S608
                 "WHERE day = %(day)s", {**fields, "day": day})


def record_fetch(conn: Connection, day: date, manifest: DayManifest | None,
                 summary: dict[str, Any]) -> None:
    status = str(summary.get("status"))
    ids = summary.get("sumario_ids") or []
    update_day(conn, day, status="no_publication" if status == "no_publication" else
               ("error" if status == "error" else "pending"),
               boe_number=", ".join(str(i) for i in ids) if isinstance(ids, list) else None,
               items=int(summary.get("items") or 0),
               fetched=sum(1 for item in (manifest.items if manifest else [])
                           if any(f.ok for f in item.files.values())))
    for item in manifest.items if manifest else []:
        stored = any(f.ok for f in item.files.values())
        conn.execute(
            """INSERT INTO documents (boe_id, day, section, department, title, fetch_status,
                                      fetch_error)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (boe_id) DO UPDATE SET day = EXCLUDED.day,
                   section = EXCLUDED.section, department = EXCLUDED.department,
                   title = EXCLUDED.title, fetch_status = EXCLUDED.fetch_status,
                   fetch_error = EXCLUDED.fetch_error, updated_at = now()""",
            (item.id, day, item.section, item.department, item.title,
             "stored" if stored else "failed", "; ".join(item.errors) or None))


def record_index(conn: Connection, day: date, indexed: dict[str, str | None],
                 failed: dict[str, str]) -> None:
    """``indexed``: BOE id → content hash of what is in Elasticsearch; ``failed``: id → why."""
    for boe_id, digest in indexed.items():
        conn.execute("""UPDATE documents SET index_status = 'indexed', index_error = NULL,
                               content_hash = %s, updated_at = now() WHERE boe_id = %s""",
                     (digest, boe_id))
    for boe_id, reason in failed.items():
        conn.execute("""UPDATE documents SET index_status = 'failed', index_error = %s,
                               updated_at = now() WHERE boe_id = %s""", (reason, boe_id))
    # Counted from the documents, so batches of one day (the DAG's mapped tasks) add up.
    row = conn.execute("""SELECT count(*) AS n FROM documents
                          WHERE day = %s AND index_status = 'indexed'""", (day,)).fetchone()
    update_day(conn, day, indexed=int((row or {}).get("n") or 0))


def record_enrichments(conn: Connection, day: date, rows: list[dict[str, Any]]) -> None:
    """One row per enriched (or failed) document: statuses, review flags, models."""
    for row in rows:
        conn.execute(
            """INSERT INTO enrichments (boe_id, day, summary_status, translation_status,
                   review_status, needs_attention, review_reasons, error, summarizer_model,
                   translator_model, prompt_version, smoke)
               SELECT %(boe_id)s, %(day)s, %(summary_status)s, %(translation_status)s,
                   %(review_status)s, %(needs_attention)s, %(review_reasons)s, %(error)s,
                   %(summarizer_model)s, %(translator_model)s, %(prompt_version)s, %(smoke)s
               WHERE EXISTS (SELECT 1 FROM documents WHERE boe_id = %(boe_id)s)
               ON CONFLICT (boe_id) DO UPDATE SET
                   summary_status = EXCLUDED.summary_status,
                   translation_status = EXCLUDED.translation_status,
                   review_status = EXCLUDED.review_status,
                   needs_attention = EXCLUDED.needs_attention,
                   review_reasons = EXCLUDED.review_reasons, error = EXCLUDED.error,
                   summarizer_model = EXCLUDED.summarizer_model,
                   translator_model = EXCLUDED.translator_model,
                   prompt_version = EXCLUDED.prompt_version, smoke = EXCLUDED.smoke,
                   updated_at = now()""",
            {"day": day, "translation_status": None, "error": None, "summarizer_model": None,
             "translator_model": None, "prompt_version": None, "smoke": False, **row,
             "review_reasons": jsonb(row.get("review_reasons") or [])})
    counts = conn.execute(
        """SELECT count(*) FILTER (WHERE summary_status = 'ok') AS enriched,
                  count(*) FILTER (WHERE needs_attention) AS needs_attention,
                  count(*) FILTER (WHERE review_status = 'failed' OR error IS NOT NULL)
                      AS failed
           FROM enrichments WHERE day = %s""", (day,)).fetchone() or {}
    update_day(conn, day, enriched=counts.get("enriched", 0),
               needs_attention=counts.get("needs_attention", 0),
               failed=counts.get("failed", 0))


def record_decision(conn: Connection, day: date, decision: Decision,
                    run_id: str | None) -> tuple[int, datetime]:
    """The reviewer's validated decision, recorded once: a rerun of the same answer (same
    draft, content, kind and reviewer) finds its row. Returns its id and the time it was
    first decided (what the published digest shows)."""
    ensure_day(conn, day)
    decided = decision.decided_at or datetime.now().astimezone()
    key = decision.key()
    conn.execute(
        """INSERT INTO review_decisions (day, decision, reviewer, reviewer_id, decided_at,
               excluded, edits, notes, note, run_id, draft_hash, decision_key, content_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (day, decision_key) WHERE decision_key IS NOT NULL DO NOTHING""",
        (day, decision.decision, decision.reviewer, decision.reviewer_id, decided,
         jsonb(decision.excluded), jsonb({k: {"resumen": v} for k, v in decision.edits.items()}),
         jsonb(decision.notes), decision.note, run_id, decision.draft_hash, key,
         decision.content_key()))
    row = conn.execute("""SELECT id, decided_at FROM review_decisions
                          WHERE day = %s AND decision_key = %s""", (day, key)).fetchone()
    assert row is not None
    if not decision.publishes:
        update_day(conn, day, digest_status=decision.decision)
    return int(row["id"]), row["decided_at"]


def decision_row(conn: Connection, decision_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM review_decisions WHERE id = %s",
                       (decision_id,)).fetchone()
    return dict(row) if row else None


def latest_digest(conn: Connection, day: date) -> dict[str, Any] | None:
    """The day's latest completely published version (files, ES, feed and this row)."""
    row = conn.execute("""SELECT * FROM digests WHERE day = %s AND status = 'published'
                          ORDER BY version DESC LIMIT 1""", (day,)).fetchone()
    return dict(row) if row else None


def publishing_digest(conn: Connection, day: date) -> dict[str, Any] | None:
    """The version of the day being published (started, not finished), if any."""
    row = conn.execute("""SELECT * FROM digests WHERE day = %s AND status = 'publishing'""",
                       (day,)).fetchone()
    return dict(row) if row else None


def start_publication(conn: Connection, day: date, *, draft_hash: str, content_key: str,
                      decision_id: int, without_review: bool) -> int:
    """Decide the next version of the day (``publishing``); returns its number."""
    row = conn.execute("SELECT COALESCE(max(version), 0) AS v FROM digests WHERE day = %s",
                       (day,)).fetchone()
    version = int((row or {}).get("v") or 0) + 1
    conn.execute(
        """INSERT INTO digests (day, version, status, draft_hash, content_hash, content_key,
               decision_id, without_review)
           VALUES (%s, %s, 'publishing', %s, '', %s, %s, %s)""",
        (day, version, draft_hash, content_key, decision_id, without_review))
    update_day(conn, day, digest_status="publishing")
    return version


def abandon_publication(conn: Connection, day: date, version: int) -> None:
    """Forget a version that was decided but never switched to (nobody saw it)."""
    conn.execute("DELETE FROM digests WHERE day = %s AND version = %s AND status = "
                 "'publishing'", (day, version))


def fail_publication(conn: Connection, day: date, version: int, error: str) -> None:
    conn.execute("""UPDATE digests SET error = %s, updated_at = now()
                    WHERE day = %s AND version = %s""", (error, day, version))
    update_day(conn, day, digest_status="publish_failed")


def finish_publication(conn: Connection, day: date, version: int, *, content_hash: str,
                       paths: dict[str, str], items: int, excluded: int) -> None:
    """Files, pointer, Elasticsearch and the feed hold ``version``: it is published."""
    conn.execute(
        """UPDATE digests SET status = 'published', content_hash = %s, paths = %s, items = %s,
               excluded = %s, error = NULL, published_at = now(), updated_at = now()
           WHERE day = %s AND version = %s""",
        (content_hash, jsonb(paths), items, excluded, day, version))
    update_day(conn, day, status="published", digest_status="published")


def delivery(conn: Connection, day: date, version: int, channel: str,
             recipient: str) -> dict[str, Any] | None:
    row = conn.execute("""SELECT * FROM deliveries WHERE day = %s AND version = %s
                          AND channel = %s AND recipient = %s""",
                       (day, version, channel, recipient)).fetchone()
    return dict(row) if row else None


def record_delivery(conn: Connection, day: date, version: int, channel: str, recipient: str,
                    *, status: str, subject: str, message_id: str,
                    error: str | None = None) -> None:
    """One message to one recipient: ``sending`` (just before handing it to SMTP), then
    ``sent`` or ``failed``; ``attempts`` counts the sends tried."""
    conn.execute(
        """INSERT INTO deliveries (day, version, channel, recipient, recipients, status,
               attempts, error, subject, message_id, sent_at)
           VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s = 'sending' THEN 1 ELSE 0 END, %s, %s,
                   %s, CASE WHEN %s = 'sent' THEN now() END)
           ON CONFLICT (day, version, channel, recipient) DO UPDATE SET
               status = EXCLUDED.status,
               attempts = deliveries.attempts + EXCLUDED.attempts,
               error = EXCLUDED.error, subject = EXCLUDED.subject,
               message_id = EXCLUDED.message_id,
               sent_at = COALESCE(EXCLUDED.sent_at, deliveries.sent_at), updated_at = now()""",
        (day, version, channel, recipient, jsonb([recipient]), status, status, error, subject,
         message_id, status))


def _rows(conn: Connection, sql: str, day: date) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sql, (day,)).fetchall()]


def day_status(conn: Connection, day: date) -> dict[str, Any] | None:
    """Everything recorded for ``day``: what is done and what failed (``boeflow status``)."""
    row = conn.execute("SELECT * FROM days WHERE day = %s", (day,)).fetchone()
    if row is None:
        return None
    docs = conn.execute(
        """SELECT count(*) AS documents,
                  count(*) FILTER (WHERE fetch_status = 'stored') AS fetched,
                  count(*) FILTER (WHERE fetch_status = 'failed') AS fetch_failed,
                  count(*) FILTER (WHERE index_status = 'indexed') AS indexed,
                  count(*) FILTER (WHERE index_status = 'failed') AS index_failed
           FROM documents WHERE day = %s""", (day,)).fetchone() or {}
    return {
        "day": dict(row),
        "tasks": _rows(conn, """SELECT task, status, error, detail, run_id, started_at,
                                       finished_at FROM task_runs WHERE day = %s
                                ORDER BY started_at, task""", day),
        "documents": dict(docs),
        "failures": _rows(conn, """SELECT d.boe_id, COALESCE(d.fetch_error, d.index_error,
                                          e.error) AS error,
                                          CASE WHEN d.fetch_status = 'failed' THEN 'fetch'
                                               WHEN d.index_status = 'failed' THEN 'index'
                                               ELSE 'enrich' END AS stage
                                   FROM documents d LEFT JOIN enrichments e USING (boe_id)
                                   WHERE d.day = %s AND (d.fetch_status = 'failed'
                                         OR d.index_status = 'failed' OR e.error IS NOT NULL)
                                   ORDER BY d.boe_id""", day),
        "enrichments": _rows(conn, """SELECT boe_id, summary_status, review_status,
                                             needs_attention, review_reasons, error
                                      FROM enrichments WHERE day = %s ORDER BY boe_id""", day),
        "decisions": _rows(conn, """SELECT id, decision, reviewer, decided_at, excluded, edits,
                                           notes, note, run_id, draft_hash
                                    FROM review_decisions WHERE day = %s
                                    ORDER BY id""", day),
        "digests": _rows(conn, """SELECT version, status, published_at, paths, items, excluded,
                                         without_review, decision_id, draft_hash, error
                                  FROM digests WHERE day = %s ORDER BY version""", day),
        "deliveries": _rows(conn, """SELECT version, channel, recipient, recipients, status,
                                            attempts, error, sent_at, message_id
                                     FROM deliveries WHERE day = %s
                                     ORDER BY version, channel, recipient""", day),
    }


def latest_decision(conn: Connection, day: date) -> dict[str, Any] | None:
    row = conn.execute("""SELECT * FROM review_decisions WHERE day = %s
                          ORDER BY id DESC LIMIT 1""", (day,)).fetchone()
    return dict(row) if row else None


def day_row(conn: Connection, day: date) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM days WHERE day = %s", (day,)).fetchone()
    return dict(row) if row else None


def recorded_failures(conn: Connection, day: date) -> dict[str, tuple[Stage, str]]:
    """Parse/index failures recorded by the index task and enrich failures, by BOE id: the
    digest's incidencias of those stages."""
    out: dict[str, tuple[Stage, str]] = {}
    for row in conn.execute("""SELECT boe_id, index_error FROM documents
                               WHERE day = %s AND index_status = 'failed'""", (day,)):
        reason = str(row["index_error"] or "no indexado")
        stage: Stage = "parse" if reason.lower().startswith(("pars", "xml", "cannot parse",
                                                              "not well-formed")) else "index"
        out[row["boe_id"]] = (stage, reason)
    for row in conn.execute("""SELECT boe_id, error FROM enrichments
                               WHERE day = %s AND error IS NOT NULL""", (day,)):
        out.setdefault(row["boe_id"], ("enrich", str(row["error"])))
    return out


def stored_documents(conn: Connection, day: date) -> list[dict[str, Any]]:
    """The day's stored documents with their index outcome (``boe_id``, ``index_status``,
    ``index_error``)."""
    return [dict(row) for row in conn.execute(
        """SELECT boe_id, index_status, index_error FROM documents
           WHERE day = %s AND fetch_status = 'stored'""", (day,)).fetchall()]


def enrichment_errors(conn: Connection, day: date) -> dict[str, str]:
    """Why each of the day's documents failed to enrich, by BOE id (the last recorded)."""
    return {row["boe_id"]: str(row["error"]) for row in conn.execute(
        """SELECT boe_id, error FROM enrichments WHERE day = %s AND error IS NOT NULL""",
        (day,)).fetchall()}


def session_lock(conn: Connection, space: int, key: int, *, wait: bool) -> bool:
    """A PostgreSQL session-level advisory lock on ``(space, key)``, held until
    ``session_unlock`` or the connection's end; with ``wait`` it waits for the holder, else
    it says whether it got the lock."""
    if wait:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (space, key))
        return True
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", (space, key)).fetchone()
    return bool(row and row["ok"])


def session_unlock(conn: Connection, space: int, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (space, key))
