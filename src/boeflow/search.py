"""Hybrid search over the BOE chunks: BM25 + kNN fused with Reciprocal Rank Fusion.

Elasticsearch's own RRF retriever needs a paid licence, so fusion happens here:
``score(d) = Σ_lists 1 / (k + rank_list(d))`` with k = 60 over chunk ids, then results are
grouped per BOE document with their best chunks, highlights and a citation.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from boeflow.embed import Embedder
from boeflow.index.client import SearchBackendError
from boeflow.index.mapping import IndexNames
from boeflow.textnorm import fold

Mode = Literal["bm25", "knn", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "knn", "hybrid")
RRF_K = 60
MAX_QUERY_CHARS = 2000
SECTIONS = ("1", "2A", "2B", "3", "4", "5A", "5B", "5C", "T")


class SearchInputError(ValueError):
    """A query or filter the user must fix (one clear line)."""


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    sections: tuple[str, ...] = ()
    department: str | None = None
    rango: str | None = None
    materia: str | None = None

    def validate(self) -> None:
        for name in ("department", "rango", "materia"):
            value = getattr(self, name)
            if value is not None and not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise SearchInputError(f"--{name} is not valid UTF-8 text") from None
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise SearchInputError(f"unknown section {', '.join(unknown)}; "
                                   f"BOE sections are {', '.join(SECTIONS)}")
        if self.since and self.until and self.since > self.until:
            raise SearchInputError(f"--since {self.since} is after --until {self.until}")

    def clauses(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.since or self.until:
            bounds = {}
            if self.since:
                bounds["gte"] = self.since.isoformat()
            if self.until:
                bounds["lte"] = self.until.isoformat()
            out.append({"range": {"published": bounds}})
        if self.sections:
            out.append({"terms": {"section": list(self.sections)}})
        if self.department:
            out.append({"match": {"department": {"query": self.department, "operator": "and"}}})
        if self.rango:
            out.append({"term": {"rango": self.rango}})
        if self.materia:
            out.append({"term": {"materias": self.materia}})
        return out


@dataclass
class ChunkHit:
    chunk_id: str
    doc_id: str
    path: list[str]
    heading: str
    text: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class DocumentResult:
    doc_id: str
    title: str
    score: float
    rango: str | None
    department: str | None
    section: str | None
    published: str | None
    citation: dict[str, Any]
    chunks: list[ChunkHit]
    links: list[dict[str, str]] = field(default_factory=list)
    smoke: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id, "title": self.title, "score": round(self.score, 6),
            "rango": self.rango, "department": self.department, "section": self.section,
            "published": self.published, "citation": self.citation, "links": self.links,
            "smoke": self.smoke,
            "chunks": [{"chunk_id": c.chunk_id, "path": c.path, "heading": c.heading,
                        "score": round(c.score, 6), "ranks": c.ranks,
                        "highlights": c.highlights, "text": c.text[:600]} for c in self.chunks],
        }


def rrf_fuse(ranked_lists: dict[str, Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal Rank Fusion of ranked id lists (rank 1 = best). Ties keep first-seen order."""
    scores: dict[str, float] = {}
    for ids in ranked_lists.values():
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _check_query(query: str) -> str:
    cleaned = " ".join(query.split())
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: argv bytes that were not UTF-8
        raise SearchInputError("the query is not valid UTF-8 text") from None
    if not cleaned:
        raise SearchInputError("empty query: give some words to search for")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise SearchInputError(f"query too long ({len(cleaned)} characters, at most "
                               f"{MAX_QUERY_CHARS}); shorten it to the essential words")
    return cleaned


def bm25_query(query: str, filters: Filters) -> dict[str, Any]:
    folded = fold(query)
    return {"bool": {
        "should": [
            {"multi_match": {"query": query, "type": "best_fields",
                             "fields": ["heading^3", "title^2", "path_text^2", "text"]}},
            {"multi_match": {"query": folded, "type": "best_fields",
                             "fields": ["heading_folded^3", "title_folded^2", "text_folded"]}},
        ],
        "minimum_should_match": 1,
        "filter": filters.clauses(),
    }}


# Ranking requests carry only small fields; text and highlights are fetched afterwards for
# the few chunks actually shown (highlighting every candidate dominated latency).
_SOURCE = ["doc_id", "chunk_id", "path", "heading", "title", "rango", "department",
           "section", "published", "url_pdf", "eli", "smoke"]
_HIGHLIGHT: dict[str, Any] = {
    "fields": {"text": {"fragment_size": 160, "number_of_fragments": 2},
               "heading": {"number_of_fragments": 0}},
    "pre_tags": ["«"], "post_tags": ["»"]}


class Searcher:
    def __init__(self, client: Elasticsearch, names: IndexNames,
                 embedder: Embedder | None) -> None:
        self.client = client
        self.names = names
        self.embedder = embedder

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, method)(**kwargs).body
        except NotFoundError:
            raise self._missing_index() from None
        except EsConnectionError:
            raise SearchBackendError("Elasticsearch is not reachable; start it with "
                                     "`boeflow services start`") from None
        except ApiError as exc:
            raise SearchBackendError(f"Elasticsearch rejected the search: {exc.message}") from None
        except TransportError as exc:
            raise SearchBackendError(f"Elasticsearch error: {exc}") from None
        return response

    def _missing_index(self) -> SearchBackendError:
        return SearchBackendError(f"index {self.names.chunks} does not exist; run "
                                  "`boeflow es setup` and `boeflow index` first")

    def _bodies(self, query: str, mode: Mode, filters: Filters,
                depth: int) -> dict[str, dict[str, Any]]:
        bodies: dict[str, dict[str, Any]] = {}
        if mode in ("bm25", "hybrid"):
            bodies["bm25"] = {"query": bm25_query(query, filters), "size": depth,
                              "_source": _SOURCE}
        if mode in ("knn", "hybrid"):
            if self.embedder is None:
                raise SearchInputError("kNN search needs the embedding model")
            vector = self.embedder.embed([query])[0].tolist()
            knn: dict[str, Any] = {"field": "vector", "query_vector": vector, "k": depth,
                                   "num_candidates": max(100, depth * 5)}
            clauses = filters.clauses()
            if clauses:
                knn["filter"] = clauses
            bodies["knn"] = {"knn": knn, "size": depth, "_source": _SOURCE}
        return bodies

    def search_chunks(self, query: str, mode: Mode, filters: Filters,
                      depth: int) -> list[ChunkHit]:
        """Ranked chunks (no text): BM25 and/or kNN in one ``_msearch``, fused by RRF."""
        query = _check_query(query)
        filters.validate()
        bodies = self._bodies(query, mode, filters, depth)
        searches: list[dict[str, Any]] = []
        for body in bodies.values():
            searches.extend([{"index": self.names.chunks}, body])
        responses = self._call("msearch", searches=searches)["responses"]
        lists: dict[str, list[dict[str, Any]]] = {}
        for name, response in zip(bodies, responses, strict=True):
            if "error" in response:
                error = response["error"]
                if response.get("status") == 404 or "index_not_found" in str(error):
                    raise self._missing_index()
                reason = error.get("reason", error) if isinstance(error, dict) else error
                raise SearchBackendError(f"Elasticsearch rejected the {name} search: {reason}")
            lists[name] = response["hits"]["hits"]
        by_id: dict[str, ChunkHit] = {}
        for name, hits in lists.items():
            for rank, hit in enumerate(hits, start=1):
                src = hit["_source"]
                entry = by_id.setdefault(hit["_id"], ChunkHit(
                    chunk_id=hit["_id"], doc_id=src["doc_id"], path=src.get("path", []),
                    heading=src.get("heading", ""), text="", score=0.0, source=src))
                entry.ranks[name] = rank
        if mode == "hybrid":
            fused = rrf_fuse({name: [h["_id"] for h in hits] for name, hits in lists.items()})
        else:
            fused = [(h["_id"], float(h["_score"] or 0.0)) for h in lists[mode]]
        result = []
        for chunk_id, score in fused:
            by_id[chunk_id].score = score
            result.append(by_id[chunk_id])
        return result

    def _fill_text(self, query: str, hits: list[ChunkHit]) -> None:
        """Text and BM25 highlights of the chunks that are shown."""
        if not hits:
            return
        ids = [h.chunk_id for h in hits]
        response = self._call(
            "search", index=self.names.chunks, size=len(ids), source_includes=["text"],
            query={"ids": {"values": ids}},
            highlight={**_HIGHLIGHT, "highlight_query": bm25_query(query, Filters())})
        found = {hit["_id"]: hit for hit in response["hits"]["hits"]}
        for chunk in hits:
            hit = found.get(chunk.chunk_id, {})
            chunk.text = hit.get("_source", {}).get("text", "")
            chunk.highlights = [f for fragments in hit.get("highlight", {}).values()
                                for f in fragments]

    def search(self, query: str, mode: Mode = "hybrid", filters: Filters | None = None,
               size: int = 10, chunks_per_doc: int = 3) -> list[DocumentResult]:
        if size < 1 or size > 100:
            raise SearchInputError("--size must be between 1 and 100")
        query = _check_query(query)
        chunk_hits = self.search_chunks(query, mode, filters or Filters(),
                                        depth=max(size * 5, 20))
        grouped: dict[str, list[ChunkHit]] = {}
        for hit in chunk_hits:
            grouped.setdefault(hit.doc_id, []).append(hit)
        results: list[DocumentResult] = []
        for doc_id, hits in list(grouped.items())[:size]:
            best = hits[0].source
            results.append(DocumentResult(
                doc_id=doc_id, title=best.get("title", ""), score=hits[0].score,
                rango=best.get("rango"), department=best.get("department"),
                section=best.get("section"), published=best.get("published"),
                citation=citation(best, hits[0]), chunks=hits[:chunks_per_doc],
                smoke=bool(best.get("smoke"))))
        # Two independent small requests: run them side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            text = pool.submit(self._fill_text, query, [c for r in results for c in r.chunks])
            links = pool.submit(self._attach_links, results)
            text.result()
            links.result()
        return results

    def _attach_links(self, results: list[DocumentResult]) -> None:
        if not results:
            return
        try:
            docs = self.client.mget(index=self.names.documents, ids=[r.doc_id for r in results],
                                    source_includes=["references", "linked_from"])["docs"]
        except (ApiError, TransportError):
            return  # links are an extra: never fail a search for them
        for result, doc in zip(results, docs, strict=True):
            src = doc.get("_source") or {}
            links = [{"relation": ref["relation"], "target_id": ref["target_id"],
                      "text": ref.get("text", "")}
                     for ref in src.get("references", [])
                     if ref["relation"] in ("corrige", "modifica", "deroga")]
            inverse = {"corrige": "corregido_por", "modifica": "modificado_por",
                       "deroga": "derogado_por", "cita": "citado_por"}
            links += [{"relation": inverse.get(link["relation"], link["relation"]),
                       "target_id": link["source_id"], "text": link.get("source_title", "")}
                      for link in src.get("linked_from", [])]
            # What changed this document matters most to a reader: show it first.
            result.links = sorted(links, key=lambda link: _LINK_PRIORITY.get(
                link["relation"], len(_LINK_PRIORITY)))


_LINK_PRIORITY = {relation: rank for rank, relation in enumerate(
    ("corregido_por", "derogado_por", "modificado_por", "corrige", "deroga", "modifica",
     "citado_por"))}


def citation(source: dict[str, Any], hit: ChunkHit) -> dict[str, Any]:
    doc_id = source["doc_id"]
    return {
        "boe_id": doc_id,
        "path": " › ".join([*hit.path, hit.heading] if hit.heading else hit.path),
        "url_pdf": source.get("url_pdf"),
        "eli": source.get("eli"),
        "url": source.get("eli") or source.get("url_pdf")
        or f"https://www.boe.es/diario_boe/txt.php?id={doc_id}",
    }
