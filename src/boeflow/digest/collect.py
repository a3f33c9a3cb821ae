"""Gather a day's digest inputs from the raw store, Elasticsearch and PostgreSQL, and the
services the builder calls back: the hybrid search of watchlists and the automatic checks of
corrected summaries."""

from __future__ import annotations

from datetime import date
from typing import Any

from elasticsearch import Elasticsearch

from boeflow.boe.manifest import MANIFEST_NAME, DayManifest
from boeflow.boe.store import RawStore, day_prefix
from boeflow.config import Settings
from boeflow.digest.build import DayInputs, EditChecker
from boeflow.digest.model import Stage, Summary
from boeflow.digest.watchlists import QueryRunner
from boeflow.index.mapping import IndexNames
from boeflow.state.db import Connection

_RECORD_FIELDS = ["doc_id", "title", "rango", "department", "section", "published", "materias",
                  "url_pdf", "eli", "references", "linked_from", "summary", "summary_text",
                  "summary_va", "title_va", "review_status", "needs_attention",
                  "review_reasons", "smoke", "content_hash"]


def load_manifest(store: RawStore, day: date) -> DayManifest | None:
    path = f"{day_prefix(day)}/{MANIFEST_NAME}"
    if not store.exists(path):
        return None
    return DayManifest.model_validate_json(store.read(path))


def fetch_records(client: Elasticsearch, names: IndexNames,
                  ids: list[str]) -> dict[str, dict[str, Any]]:
    """``boe-documents`` sources of ``ids`` (without the text), those that exist."""
    if not ids or not client.indices.exists(index=names.documents):
        return {}
    records: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        docs = client.mget(index=names.documents, ids=ids[start:start + 500],
                           source_includes=_RECORD_FIELDS)["docs"]
        records.update({d["_id"]: d["_source"] for d in docs if d.get("found")})
    return records


def recorded_failures(conn: Connection | None, day: date) -> dict[str, tuple[Stage, str]]:
    """Parse/index failures recorded by the index task, by BOE id."""
    if conn is None:
        return {}
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


def collect(day: date, settings: Settings, store: RawStore, client: Elasticsearch,
            names: IndexNames, conn: Connection | None) -> DayInputs:
    manifest = load_manifest(store, day)
    ids = [item.id for item in manifest.items] if manifest else []
    return DayInputs(day=day, manifest=manifest, records=fetch_records(client, names, ids),
                     failures=recorded_failures(conn, day), site_url=settings.digest_site_url)


def check_correction(settings: Settings, source_text: str, language: str,
                     summary: Summary, spanish: str | None = None) -> tuple[bool, list[str]]:
    """The automatic review of a reviewer's corrected summary: (passed, reasons). A Spanish
    resumen is reviewed as a summary of the document's text (``review_summary``); a
    Valencian one as the translation of the Spanish resumen ``spanish``
    (``review_translation``, what the enrich stage runs on Aitana's output) — against the
    Spanish document every Valencian word would count as invented."""
    from boeflow.review import review_summary
    from boeflow.review.checks import review_translation

    if language == "va" and spanish:
        result = review_translation([(spanish, summary.resumen)], target_language="va")
        return (not result.reasons, list(result.reasons))
    fields = {k: v for k, v in summary.model_dump().items() if v not in (None, [], "")}
    result = review_summary(fields=fields, raw_text=summary.resumen, status="ok",
                            errors=[], source_text=source_text,
                            resumen_max_chars=settings.summary_resumen_max_chars,
                            language="va" if language == "va" else "es")
    # A corrected resumen alone has no puntos clave: that is not the reviewer's fault.
    reasons = [r for r in result.reasons if "puntos_clave" not in r]
    return (not reasons, reasons)


def edit_checker(settings: Settings, client: Elasticsearch, names: IndexNames) -> EditChecker:
    """``check_correction`` of a corrected summary, against the document text stored in
    ``boe-documents``; a Valencian correction against the Spanish resumen as published: the
    same answer's Spanish correction (``apply_review`` checks it first), else the stored one."""
    corrected_es: dict[str, str] = {}

    def check(boe_id: str, language: str, summary: Summary) -> tuple[bool, list[str]]:
        source = client.get(index=names.documents, id=boe_id,
                            source_includes=["text", "summary_text"],
                            ignore=[404])  # type: ignore[call-arg]
        found = source.get("_source") or {}
        if language == "es":
            corrected_es[boe_id] = summary.resumen
        spanish = corrected_es.get(boe_id) or str(found.get("summary_text") or "") or None
        return check_correction(settings, str(found.get("text") or ""), language, summary,
                                spanish=spanish)

    return check


def hybrid_query(settings: Settings, client: Elasticsearch, names: IndexNames) -> QueryRunner:
    """Free-text watchlists through ``boeflow.search`` (hybrid BM25 + kNN, RRF), limited to
    the day; the embedder is loaded on the first query only."""
    from boeflow.embed import Embedder, build_embedder
    from boeflow.search import Filters, Searcher

    embedder: list[Embedder] = []

    def run(query: str, day: date) -> list[str]:
        if not embedder:
            embedder.append(build_embedder(settings))
        searcher = Searcher(client, names, embedder[0])
        results = searcher.search(query, "hybrid", Filters(since=day, until=day), size=20)
        return [r.doc_id for r in results]

    return run
