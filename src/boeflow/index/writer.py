"""Indexing stage: parsed documents + chunks + vectors → Elasticsearch, idempotently.

* chunk ids are stable (document id + structural path + content hash), so an unchanged chunk
  is neither re-embedded nor re-sent; a document whose content and pipeline (chunker and
  embedding model) are unchanged is skipped before any model work;
* chunks that disappear when a document is re-chunked are deleted by id (the test
  distribution has no ``_delete_by_query``);
* bulk requests are bounded (``chunk_size``/``max_chunk_bytes``); per-item failures are
  reported with the BOE id and the document record is not written, so a rerun retries it;
* corrections and modifications become links on the documents they affect;
* the indexer owns only its own fields of a ``boe-documents`` record: the record is upserted
  (partial update), so the summary, translation and review fields that enrich writes survive
  any re-index (``force``, a new pipeline key after a chunking change); when the document's
  text itself changed, the record is marked ``enrichment_stale`` until enrich re-does it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import ConnectionTimeout, Elasticsearch
from elasticsearch.helpers import pack_dense_vector, streaming_bulk

from boeflow.core.textnorm import fold, stem_text
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.index.client import SearchBackendError
from boeflow.index.embed import Embedder
from boeflow.index.mapping import INVERSE_RELATION, SHOWN_RELATIONS, IndexNames, link_key
from boeflow.index.report import IndexReport

# Bump when parsing/chunking (or the indexed fields) change: every document is then
# re-indexed (its vectors come from the embedding cache when it has them).
PIPELINE_VERSION = "structure-chunks-2"  # 2: *_stem fields
EMBED_GROUP_CHUNKS = 256
LOOKUP_BATCH_DOCS = 64  # documents per record/chunk lookup
LOOKUP_PAGE = 5000  # hits per page of the lookups
RETRY_ON_CONFLICT = 5  # concurrent runs updating the same document record
BULK_CHUNK_SIZE = 500
BULK_MAX_BYTES = 16 * 1024 * 1024


def content_hash(doc: ParsedDocument, chunks: list[Chunk]) -> str:
    digest = hashlib.sha256(doc.model_dump_json(exclude={"references"}).encode("utf-8"))
    for chunk in chunks:
        digest.update(chunk.id.encode("utf-8"))
    return digest.hexdigest()[:32]


def source_hash(doc: ParsedDocument) -> str:
    """The hash of what enrichment is made from: the parsed document itself, independent of
    how it is chunked (a chunking change must not make a summary stale)."""
    data = doc.model_dump_json(exclude={"references"}).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:32]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _doc_fields(doc: ParsedDocument, smoke: bool) -> dict[str, Any]:
    return {
        "doc_id": doc.id,
        "title": doc.title,
        "title_folded": fold(doc.title),
        "title_stem": stem_text(doc.title),
        "rango": doc.rango,
        "department": doc.department,
        "section": doc.section,
        "published": doc.published.isoformat() if doc.published else None,
        "materias": doc.materias,
        "url_pdf": doc.url_pdf,
        "eli": doc.eli,
        "smoke": smoke,
        "indexed_at": _now(),
    }


def chunk_source(chunk: Chunk, doc: ParsedDocument, vector: np.ndarray[Any, Any] | list[float],
                 model_key: str, smoke: bool) -> dict[str, Any]:
    """The ``boe-chunks`` record; the vector is sent as base64 big-endian float32 (Elasticsearch
    9.3+), about a quarter of the bytes of a JSON float list and no float formatting."""
    return {
        **_doc_fields(doc, smoke),
        "chunk_id": chunk.id,
        "kind": chunk.kind,
        "path": chunk.path,
        "path_text": " › ".join(chunk.path),
        "heading": chunk.heading,
        "heading_folded": fold(chunk.heading),
        "heading_stem": stem_text(chunk.heading),
        "text": chunk.text,
        "text_folded": fold(chunk.text),
        "text_stem": stem_text(chunk.text),
        "bare_text": chunk.bare_text,
        "n_tokens": chunk.n_tokens,
        "start": chunk.start,
        "end": chunk.end,
        "overlap_chars": chunk.overlap_chars,
        "model": model_key,
        "vector": pack_dense_vector(np.asarray(vector, dtype=np.float32)),
    }


def document_source(doc: ParsedDocument, chunks: list[Chunk], pipeline_key: str,
                    digest: str, smoke: bool) -> dict[str, Any]:
    return {
        **_doc_fields(doc, smoke),
        "references": [ref.model_dump() for ref in doc.references],
        "link_refs": [link_key(ref.relation, ref.target_id, ref.text)
                      for ref in doc.references if ref.relation in SHOWN_RELATIONS],
        "text": doc.text,
        "text_folded": fold(doc.text),
        "n_chunks": len(chunks),
        "n_units": len(doc.units),
        "content_hash": digest,
        "source_hash": source_hash(doc),
        "pipeline_key": pipeline_key,
        "source_format": doc.source_format,
        "language": doc.language,
        "parse_warnings": doc.warnings[:20],
    }


def existing_chunk_ids(client: Elasticsearch, names: IndexNames, doc_id: str) -> set[str]:
    """Ids of the chunks of one document in ``boe-chunks`` (whatever its document record says)."""
    return existing_chunks(client, names, [doc_id]).get(doc_id, set())


def existing_chunks(client: Elasticsearch, names: IndexNames,
                    doc_ids: Sequence[str]) -> dict[str, set[str]]:
    """{document id: ids of its chunks in ``boe-chunks``} for a batch of documents, in as few
    requests as the page size allows. Found by ``doc_id``, not through the document record,
    so chunks of a run killed before its document records were written are found too."""
    found: dict[str, set[str]] = {}
    if not doc_ids:
        return found
    search_after: list[Any] | None = None
    while True:
        kwargs: dict[str, Any] = {"index": names.chunks, "size": LOOKUP_PAGE, "source": False,
                                  "docvalue_fields": ["doc_id"],
                                  "query": {"terms": {"doc_id": sorted(set(doc_ids))}},
                                  "sort": [{"chunk_id": "asc"}], "track_total_hits": False}
        if search_after:
            kwargs["search_after"] = search_after
        hits = client.search(**kwargs)["hits"]["hits"]
        for hit in hits:
            found.setdefault(hit["fields"]["doc_id"][0], set()).add(hit["_id"])
        if len(hits) < LOOKUP_PAGE:
            return found
        search_after = hits[-1]["sort"]


def _stored_documents(client: Elasticsearch, names: IndexNames,
                      doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{document id: the indexer's hashes and the review status of its record} in one
    ``mget``."""
    docs = client.mget(index=names.documents, ids=list(doc_ids),
                       source_includes=["content_hash", "pipeline_key", "source_hash",
                                        "review_status"])["docs"]
    return {doc["_id"]: doc.get("_source") or {} for doc in docs if doc.get("found")}


@dataclass
class _Pending:
    doc: ParsedDocument
    chunks: list[Chunk]
    to_embed: list[Chunk]
    stale: set[str]
    digest: str
    enrichment_stale: bool = False


def _enrichment_stale(record: dict[str, Any], doc: ParsedDocument) -> bool:
    """True when the record was enriched from another text than ``doc``'s (a record of an
    older layout without ``source_hash`` counts as changed: enrich then re-stores it, from
    its cache when the text is in fact the same)."""
    return bool(record.get("review_status")) and record.get("source_hash") != source_hash(doc)


def _reason(result: dict[str, Any]) -> str:
    error = result.get("error") or result.get("exception") or "unknown error"
    return error.get("reason", str(error)) if isinstance(error, dict) else str(error)


def _bulk(client: Elasticsearch, actions: list[dict[str, Any]]) -> dict[str, str]:
    """Send actions; return {document id: reason} for failed items (after one retry).

    A missing target of a delete or update is not a failure (the goal is met, or the linked
    document is simply not indexed)."""
    failures: dict[str, tuple[dict[str, Any], str]] = {}
    for attempt in range(2):
        batch = actions if attempt == 0 else [action for action, _ in failures.values()]
        if not batch:
            break
        failures_now: dict[str, tuple[dict[str, Any], str]] = {}
        by_id = {str(a["_id"]): a for a in batch}
        for ok, item in streaming_bulk(client, batch, chunk_size=BULK_CHUNK_SIZE,
                                       max_chunk_bytes=BULK_MAX_BYTES, raise_on_error=False,
                                       raise_on_exception=False, max_retries=3,
                                       initial_backoff=1):
            if ok:
                continue
            op, result = next(iter(item.items()))
            if op in ("delete", "update") and result.get("status") == 404:
                continue
            key = str(result.get("_id"))
            failures_now[key] = (by_id.get(key, {}), f"{op}: {_reason(result)}"[:300])
        failures = failures_now
    return {action.get("_doc_id", key): reason for key, (action, reason) in failures.items()}


class IndexingInterrupted(SearchBackendError):
    """Elasticsearch stopped answering in the middle of a run (one clear line)."""


def index_documents(
    client: Elasticsearch,
    names: IndexNames,
    embedder: Embedder,
    items: Iterable[tuple[ParsedDocument, list[Chunk]]],
    smoke: bool = False,
    on_document: Callable[[str], None] | None = None,
    force: bool = False,
) -> IndexReport:
    """Index documents in batches: one ``mget`` of the document records and one search of
    existing chunks per batch, vectors sent as base64 float32, chunk writes and stale-chunk
    deletes in bounded bulk requests, document records only after their chunks succeeded,
    one refresh at the end. An Elasticsearch that stops answering ends the run with
    :class:`IndexingInterrupted`; a rerun resumes (finished documents are skipped).
    ``force`` re-indexes unchanged documents too (for upgrades): every chunk is re-sent,
    its vector from the embedding cache."""
    report = IndexReport()
    pipeline_key = f"{PIPELINE_VERSION}|{embedder.model_key}"
    # What refresh_links needs of each written document (its id and the documents it
    # cites), never the documents themselves: a day's texts are not held to the end.
    touched: dict[str, set[str]] = {}
    batch: list[tuple[ParsedDocument, list[Chunk]]] = []
    current = ""

    def process() -> None:
        nonlocal current
        if not batch:
            return
        current = batch[0][0].id if len(batch) == 1 else f"{batch[0][0].id}…{batch[-1][0].id}"
        stored = _stored_documents(client, names, [doc.id for doc, _ in batch])
        group: list[_Pending] = []
        for doc, chunks in batch:
            digest = content_hash(doc, chunks)
            record = stored.get(doc.id, {})
            if (not force and record.get("content_hash") == digest
                    and record.get("pipeline_key") == pipeline_key):
                report.skipped_unchanged += 1
                report.chunks_unchanged += len(chunks)
                continue
            stale_enrichment = _enrichment_stale(record, doc)
            report.enrichment_stale += stale_enrichment
            group.append(_Pending(doc, chunks, [], set(), digest, stale_enrichment))
        previous = existing_chunks(client, names, [p.doc.id for p in group])
        for pending in group:
            have = previous.get(pending.doc.id, set())
            # Chunk ids hash their content; reuse them only when the record proves they were
            # embedded by this pipeline (a run killed before the record re-sends them all).
            reuse = (not force
                     and stored.get(pending.doc.id, {}).get("pipeline_key") == pipeline_key)
            pending.to_embed = [c for c in pending.chunks if not (reuse and c.id in have)]
            pending.stale = have - {c.id for c in pending.chunks}
            report.chunks_unchanged += len(pending.chunks) - len(pending.to_embed)
        _flush(client, names, embedder, group, report, touched, pipeline_key, smoke)
        if on_document:
            for doc, _ in batch:
                on_document(doc.id)
        batch.clear()

    try:
        pending_chunks = 0
        for doc, chunks in items:
            report.documents += 1
            report.chunks += len(chunks)
            batch.append((doc, chunks))
            pending_chunks += len(chunks)
            if len(batch) >= LOOKUP_BATCH_DOCS or pending_chunks >= EMBED_GROUP_CHUNKS:
                process()
                pending_chunks = 0
        process()
        current = "the final refresh"
        client.indices.refresh(index=[names.chunks, names.documents])
        if touched:
            current = "the document links"
            refresh_links(client, names, touched)
    except (EsConnectionError, ConnectionTimeout) as exc:
        written = len(touched)
        raise IndexingInterrupted(
            f"Elasticsearch stopped answering while indexing {current} ({type(exc).__name__}); "
            f"{written} document(s) were written before; rerun to finish "
            "(finished documents are skipped)") from None
    return report


def _flush(client: Elasticsearch, names: IndexNames, embedder: Embedder,
           group: list[_Pending], report: IndexReport, touched: dict[str, set[str]],
           pipeline_key: str, smoke: bool) -> None:
    if not group:
        return
    texts = [c.text for p in group for c in p.to_embed]
    before = embedder.stats.computed
    started = time.perf_counter()
    vectors = embedder.embed(texts) if texts else None
    report.embed_seconds += time.perf_counter() - started
    report.embedded += embedder.stats.computed - before
    actions: list[dict[str, Any]] = []
    row = 0
    for pending in group:
        for chunk in pending.to_embed:
            assert vectors is not None
            actions.append({"_op_type": "index", "_index": names.chunks, "_id": chunk.id,
                            "_doc_id": pending.doc.id,
                            "_source": chunk_source(chunk, pending.doc, vectors[row],
                                                    embedder.model_key, smoke)})
            row += 1
        actions.extend({"_op_type": "delete", "_index": names.chunks, "_id": stale_id,
                        "_doc_id": pending.doc.id} for stale_id in sorted(pending.stale))
    # "_doc_id" rides along for error reports; the bulk helper drops unknown metadata.
    started = time.perf_counter()
    failed = _bulk(client, actions)
    report.bulk_seconds += time.perf_counter() - started
    report.bulk_actions += len(actions)
    doc_actions = []
    for pending in group:
        if pending.doc.id in failed:
            report.failed[pending.doc.id] = failed[pending.doc.id]
            continue
        report.deleted_stale += len(pending.stale)
        fields = document_source(pending.doc, pending.chunks, pipeline_key, pending.digest,
                                 smoke)
        if pending.enrichment_stale:
            fields["enrichment_stale"] = True
        # An upsert of the indexer's own fields: what enrich and review wrote stays.
        doc_actions.append({"_op_type": "update", "_index": names.documents,
                            "_id": pending.doc.id, "retry_on_conflict": RETRY_ON_CONFLICT,
                            "doc": fields, "doc_as_upsert": True})
        touched[pending.doc.id] = link_targets(pending.doc)
    started = time.perf_counter()
    written = _bulk(client, doc_actions)
    report.bulk_seconds += time.perf_counter() - started
    report.bulk_actions += len(doc_actions)
    for doc_id, reason in written.items():
        report.failed[doc_id] = reason
        touched.pop(doc_id, None)


def link_targets(doc: ParsedDocument) -> set[str]:
    """The documents ``doc`` corrects, modifies or cites (its earlier references)."""
    return {ref.target_id for ref in doc.references if ref.direction == "anterior"}


def refresh_links(client: Elasticsearch, names: IndexNames,
                  written: Mapping[str, set[str]]) -> None:
    """Write ``linked_from`` (who corrects/modifies/cites me) on every affected document: one
    search for the referencing documents, one bulk of partial updates. ``written`` maps each
    written document to its :func:`link_targets`. Concurrent runs touching the same
    documents retry on version conflicts instead of failing."""
    affected = set(written) | {target for targets in written.values() for target in targets}
    links: dict[str, list[dict[str, str]]] = {target: [] for target in affected}
    search_after: list[Any] | None = None
    while True:
        kwargs: dict[str, Any] = {
            "index": names.documents, "size": LOOKUP_PAGE,
            "source_includes": ["title", "references"],
            "query": {"terms": {"references.target_id": sorted(affected)}},
            "sort": [{"doc_id": "asc"}], "track_total_hits": False}
        if search_after:
            kwargs["search_after"] = search_after
        hits = client.search(**kwargs)["hits"]["hits"]
        for hit in hits:
            for ref in hit["_source"].get("references", []):
                if ref["target_id"] in links and ref["direction"] == "anterior":
                    links[ref["target_id"]].append(
                        {"source_id": hit["_id"], "relation": ref["relation"],
                         "source_title": hit["_source"].get("title", "")})
        if len(hits) < LOOKUP_PAGE:
            break
        search_after = hits[-1]["sort"]
    actions = [{"_op_type": "update", "_index": names.documents, "_id": target,
                "retry_on_conflict": RETRY_ON_CONFLICT, "doc": {
                    "linked_from": found,
                    "link_from": [link_key(INVERSE_RELATION.get(link["relation"],
                                                                link["relation"]),
                                           link["source_id"], link["source_title"])
                                  for link in found]}}
               for target, found in sorted(links.items())]
    failed = _bulk(client, actions)  # a target that is not indexed (404) is skipped
    if failed:
        doc_id, reason = next(iter(failed.items()))
        raise SearchBackendError(f"could not write the links of {doc_id}: {reason}")
    client.indices.refresh(index=names.documents)
