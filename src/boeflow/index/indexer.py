"""Indexing stage: parsed documents + chunks + vectors → Elasticsearch, idempotently.

* chunk ids are stable (document id + structural path + content hash), so an unchanged chunk
  is neither re-embedded nor re-sent; a document whose content and pipeline (chunker and
  embedding model) are unchanged is skipped before any model work;
* chunks that disappear when a document is re-chunked are deleted by id (the test
  distribution has no ``_delete_by_query``);
* bulk requests are bounded (``chunk_size``/``max_chunk_bytes``); per-item failures are
  reported with the BOE id and the document record is not written, so a rerun retries it;
* corrections and modifications become links on the documents they affect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError
from elasticsearch.helpers import streaming_bulk

from boeflow.embed import Embedder
from boeflow.index.mapping import IndexNames
from boeflow.textnorm import fold
from boeflow.types import Chunk, ParsedDocument

# Bump when parsing/chunking changes what chunks mean: every document is then re-indexed.
PIPELINE_VERSION = "structure-chunks-1"
EMBED_GROUP_CHUNKS = 256
BULK_CHUNK_SIZE = 500
BULK_MAX_BYTES = 16 * 1024 * 1024


@dataclass
class IndexReport:
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    chunks_unchanged: int = 0
    skipped_unchanged: int = 0
    deleted_stale: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "chunks": self.chunks, "embedded": self.embedded,
                "chunks_unchanged": self.chunks_unchanged,
                "skipped_unchanged": self.skipped_unchanged, "deleted_stale": self.deleted_stale,
                "failed": dict(self.failed)}


def content_hash(doc: ParsedDocument, chunks: list[Chunk]) -> str:
    digest = hashlib.sha256(doc.model_dump_json(exclude={"references"}).encode("utf-8"))
    for chunk in chunks:
        digest.update(chunk.id.encode("utf-8"))
    return digest.hexdigest()[:32]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _doc_fields(doc: ParsedDocument, smoke: bool) -> dict[str, Any]:
    return {
        "doc_id": doc.id,
        "title": doc.title,
        "title_folded": fold(doc.title),
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


def chunk_source(chunk: Chunk, doc: ParsedDocument, vector: list[float], model_key: str,
                 smoke: bool) -> dict[str, Any]:
    return {
        **_doc_fields(doc, smoke),
        "chunk_id": chunk.id,
        "kind": chunk.kind,
        "path": chunk.path,
        "path_text": " › ".join(chunk.path),
        "heading": chunk.heading,
        "heading_folded": fold(chunk.heading),
        "text": chunk.text,
        "text_folded": fold(chunk.text),
        "bare_text": chunk.bare_text,
        "n_tokens": chunk.n_tokens,
        "start": chunk.start,
        "end": chunk.end,
        "overlap_chars": chunk.overlap_chars,
        "model": model_key,
        "vector": vector,
    }


def document_source(doc: ParsedDocument, chunks: list[Chunk], pipeline_key: str,
                    digest: str, smoke: bool) -> dict[str, Any]:
    return {
        **_doc_fields(doc, smoke),
        "references": [ref.model_dump() for ref in doc.references],
        "text": doc.text,
        "text_folded": fold(doc.text),
        "n_chunks": len(chunks),
        "n_units": len(doc.units),
        "content_hash": digest,
        "pipeline_key": pipeline_key,
        "source_format": doc.source_format,
        "language": doc.language,
    }


def existing_chunk_ids(client: Elasticsearch, names: IndexNames, doc_id: str) -> set[str]:
    ids: set[str] = set()
    search_after: list[Any] | None = None
    while True:
        kwargs: dict[str, Any] = {"index": names.chunks, "size": 1000, "source": False,
                                  "query": {"term": {"doc_id": doc_id}},
                                  "sort": [{"chunk_id": "asc"}]}
        if search_after:
            kwargs["search_after"] = search_after
        hits = client.search(**kwargs)["hits"]["hits"]
        ids.update(hit["_id"] for hit in hits)
        if len(hits) < 1000:
            return ids
        search_after = hits[-1]["sort"]


def _stored_document(client: Elasticsearch, names: IndexNames, doc_id: str) -> dict[str, Any]:
    try:
        found = client.get(index=names.documents, id=doc_id,
                           source_includes=["content_hash", "pipeline_key"])
    except NotFoundError:
        return {}
    source: dict[str, Any] = found.get("_source") or {}
    return source


@dataclass
class _Pending:
    doc: ParsedDocument
    chunks: list[Chunk]
    to_embed: list[Chunk]
    stale: set[str]
    digest: str


def _bulk(client: Elasticsearch, actions: list[dict[str, Any]]) -> dict[str, str]:
    """Send actions; return {document id: reason} for failed items (after one retry)."""
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
            if op == "delete" and result.get("status") == 404:
                continue  # already gone: the goal of a delete is met
            error = result.get("error") or result.get("exception") or "unknown error"
            reason = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
            key = str(result.get("_id"))
            failures_now[key] = (by_id.get(key, {}), f"{op}: {reason}"[:300])
        failures = failures_now
    return {action.get("_doc_id", key): reason for key, (action, reason) in failures.items()}


def index_documents(
    client: Elasticsearch,
    names: IndexNames,
    embedder: Embedder,
    items: Iterable[tuple[ParsedDocument, list[Chunk]]],
    smoke: bool = False,
    on_document: Callable[[str], None] | None = None,
) -> IndexReport:
    report = IndexReport()
    pipeline_key = f"{PIPELINE_VERSION}|{embedder.model_key}"
    group: list[_Pending] = []
    touched: list[ParsedDocument] = []

    def flush() -> None:
        if not group:
            return
        texts = [c.text for p in group for c in p.to_embed]
        before = embedder.stats.computed
        vectors = embedder.embed(texts) if texts else None
        report.embedded += embedder.stats.computed - before
        actions: list[dict[str, Any]] = []
        row = 0
        for pending in group:
            for chunk in pending.to_embed:
                assert vectors is not None
                actions.append({"_op_type": "index", "_index": names.chunks, "_id": chunk.id,
                                "_doc_id": pending.doc.id,
                                "_source": chunk_source(chunk, pending.doc,
                                                        vectors[row].tolist(),
                                                        embedder.model_key, smoke)})
                row += 1
            actions.extend({"_op_type": "delete", "_index": names.chunks, "_id": stale_id,
                            "_doc_id": pending.doc.id} for stale_id in sorted(pending.stale))
        # "_doc_id" rides along for error reports; the bulk helper drops unknown metadata.
        failed = _bulk(client, actions)
        doc_actions = []
        for pending in group:
            if pending.doc.id in failed:
                report.failed[pending.doc.id] = failed[pending.doc.id]
                continue
            report.deleted_stale += len(pending.stale)
            doc_actions.append({"_op_type": "index", "_index": names.documents,
                                "_id": pending.doc.id,
                                "_source": document_source(pending.doc, pending.chunks,
                                                           pipeline_key, pending.digest, smoke)})
            touched.append(pending.doc)
        for doc_id, reason in _bulk(client, doc_actions).items():
            report.failed[doc_id] = reason
        group.clear()

    for doc, chunks in items:
        report.documents += 1
        report.chunks += len(chunks)
        digest = content_hash(doc, chunks)
        stored = _stored_document(client, names, doc.id)
        if stored.get("content_hash") == digest and stored.get("pipeline_key") == pipeline_key:
            report.skipped_unchanged += 1
            report.chunks_unchanged += len(chunks)
            if on_document:
                on_document(doc.id)
            continue
        previous = existing_chunk_ids(client, names, doc.id) if stored else set()
        same_pipeline = stored.get("pipeline_key") == pipeline_key
        to_embed = [c for c in chunks if not (same_pipeline and c.id in previous)]
        report.chunks_unchanged += len(chunks) - len(to_embed)
        group.append(_Pending(doc, chunks, to_embed, previous - {c.id for c in chunks}, digest))
        if sum(len(p.to_embed) for p in group) >= EMBED_GROUP_CHUNKS:
            flush()
        if on_document:
            on_document(doc.id)
    flush()
    client.indices.refresh(index=[names.chunks, names.documents])
    if touched:
        refresh_links(client, names, touched)
    return report


def refresh_links(client: Elasticsearch, names: IndexNames, docs: list[ParsedDocument]) -> None:
    """Write ``linked_from`` (who corrects/modifies/cites me) on every affected document."""
    affected = {doc.id for doc in docs} | {ref.target_id for doc in docs for ref in doc.references
                                           if ref.direction == "anterior"}
    present = {hit["_id"] for hit in client.search(
        index=names.documents, size=len(affected), source=False,
        query={"ids": {"values": sorted(affected)}})["hits"]["hits"]}
    for target in sorted(present):
        hits = client.search(index=names.documents, size=500,
                             source_includes=["title", "references"],
                             query={"term": {"references.target_id": target}})["hits"]["hits"]
        links = []
        for hit in hits:
            for ref in hit["_source"].get("references", []):
                if ref["target_id"] == target and ref["direction"] == "anterior":
                    links.append({"source_id": hit["_id"], "relation": ref["relation"],
                                  "source_title": hit["_source"].get("title", "")})
        client.update(index=names.documents, id=target, doc={"linked_from": links},
                      refresh=False)
    client.indices.refresh(index=names.documents)
