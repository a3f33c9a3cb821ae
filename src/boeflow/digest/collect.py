"""Gather a day's digest inputs from the raw store, Elasticsearch and PostgreSQL, and the
services the builder calls back: the hybrid search of watchlists and the automatic checks of
corrected summaries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from elasticsearch import Elasticsearch

from boeflow.boe.manifest import DayManifest
from boeflow.boe.store import RawStore, load_manifest
from boeflow.core.settings import Settings
from boeflow.digest.build import DayInputs, EditChecker
from boeflow.digest.model import Stage, Summary
from boeflow.digest.watchlists import QueryHit, QueryRunner
from boeflow.enrich.titles import load_day_titles
from boeflow.index.mapping import IndexNames

_RECORD_FIELDS = ["doc_id", "title", "rango", "department", "section", "published", "materias",
                  "url_pdf", "eli", "references", "linked_from", "summary", "summary_text",
                  "summary_va", "title_va", "review_status", "needs_attention",
                  "review_reasons", "smoke", "content_hash", "enrichment_stale",
                  "legal_links", "parse_warnings", "review_facts", "enrichment.va_source"]


def listed_items(store: RawStore, manifest: DayManifest | None) -> dict[str, int] | None:
    """Items the day's stored sumario lists, by section (each id once): what a complete
    digest of the day holds. None when there is no readable sumario."""
    from boeflow.boe.sumario import NoPublication, SumarioFormatError, parse_sumario

    record = manifest.sumario if manifest else None
    if manifest is None or manifest.status != "published" or record is None or \
            not record.path or record.source not in ("api-xml", "api-json", "legacy"):
        return None
    try:
        sumario = parse_sumario(store.read(record.path), record.source)  # type: ignore[arg-type]
    except (OSError, NoPublication, SumarioFormatError, ValueError):
        return None
    sections: dict[str, set[str]] = {}
    for item in sumario.items:
        sections.setdefault(item.section, set()).add(item.id)
    return {code: len(ids) for code, ids in sections.items()}


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


def collect(day: date, settings: Settings, store: RawStore, client: Elasticsearch,
            names: IndexNames, failures: dict[str, tuple[Stage, str]]) -> DayInputs:
    """What the day's digest is built from; ``failures``: the parse/index/enrich failures
    recorded for the day, by BOE id (``boeflow.state.records.recorded_failures``)."""
    manifest = load_manifest(store, day)
    ids = [item.id for item in manifest.items] if manifest else []
    return DayInputs(day=day, manifest=manifest, records=fetch_records(client, names, ids),
                     failures=failures, site_url=settings.digest_site_url,
                     listed=listed_items(store, manifest),
                     cards=facts_cards(settings, ids),
                     titles_va=load_day_titles(settings, day))


def facts_cards(settings: Settings, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The ``boeflow facts`` card of every item whose document is in the raw store; an item
    whose document cannot be read has no card (its fetch incidence says why)."""
    from boeflow.review.card import facts_card
    from boeflow.review.source import load_source

    cards: dict[str, dict[str, Any]] = {}
    for boe_id in ids:
        try:
            doc = load_source(settings, boe_id)
        except (OSError, ValueError):
            continue
        cards[boe_id] = facts_card(doc, settings.facts_holiday_region)
    return cards


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


# What one watchlist query finds before its floors: (significant words, BM25 results as
# (BOE id, those words in its best passage), kNN results as (BOE id, cosine similarity)).
Evidence = tuple[set[str], list[tuple[str, set[str]]], list[tuple[str, float]]]


def query_evidence(settings: Settings, client: Elasticsearch, names: IndexNames
                   ) -> Callable[[str, date | None], Evidence]:
    """What a watchlist query finds through ``boeflow.index.search`` (limited to a day, or every
    day for the calibration): BM25 always, kNN only with a real embedding model and index.
    The embedder is loaded on the first query only."""
    from elasticsearch import ApiError, TransportError

    from boeflow.digest.watchlists import QUERY_DEPTH, passage_words, significant_words
    from boeflow.index.client import SearchBackendError
    from boeflow.index.embed import Embedder, shared_embedder
    from boeflow.index.search import Filters, Searcher
    from boeflow.models.loading import is_smoke_model

    semantic = not settings.is_smoke and not is_smoke_model(settings.embed_model)
    embedder: list[Embedder] = []

    def analyzed(query: str) -> list[str]:
        try:
            response = client.indices.analyze(index=names.chunks, analyzer="boe_spanish",
                                              text=query)
        except (ApiError, TransportError) as exc:
            raise SearchBackendError(f"Elasticsearch could not analyse the query: {exc}"
                                     ) from None
        return [str(t["token"]) for t in response.get("tokens", [])]

    def evidence(query: str, day: date | None) -> Evidence:
        filters = Filters(since=day, until=day) if day else Filters()
        words = significant_words(analyzed(query))
        if not words:  # only stopwords: nothing to agree on
            return words, [], []
        bm25 = Searcher(client, names, None).search(query, "bm25", filters, size=QUERY_DEPTH,
                                                   chunks_per_doc=3)
        lexical = [(r.doc_id, max((passage_words(r.title, c.heading, c.text) & words
                                   for c in r.chunks), key=len, default=set()))
                   for r in bm25]
        nearest: list[tuple[str, float]] = []
        use_knn = semantic and bool(bm25) and not any(r.smoke for r in bm25)
        if use_knn:
            if not embedder:
                embedder.append(shared_embedder(settings))
            knn = Searcher(client, names, embedder[0]).search(
                query, "knn", filters, size=QUERY_DEPTH, details=False)
            if not any(r.smoke for r in knn):
                # Elasticsearch's cosine score is (1 + cos) / 2
                nearest = [(r.doc_id, 2 * r.score - 1) for r in knn]
        return words, lexical, nearest

    return evidence


def hybrid_query(settings: Settings, client: Elasticsearch, names: IndexNames) -> QueryRunner:
    """Free-text watchlists, limited to the day: an item matches with ``MIN_COVERAGE`` of the
    query's significant words in one passage (BM25), or — with a real embedding model — with
    ``BOEFLOW_DIGEST_WATCH_MIN_SIMILARITY`` and BM25's agreement (kNN)."""
    from boeflow.digest.watchlists import query_hits

    evidence = query_evidence(settings, client, names)

    def run(query: str, day: date | None) -> list[QueryHit]:
        words, lexical, nearest = evidence(query, day)
        return query_hits(words, lexical, nearest,
                          settings.digest_watch_min_similarity if nearest else None)

    return run
