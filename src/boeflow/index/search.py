"""Hybrid search over the BOE chunks: BM25 + kNN fused with Reciprocal Rank Fusion.

Users ask for documents, the index holds chunks: each ranked list (BM25 top chunks, kNN
nearest chunks) is grouped per document and widened until it covers ``size`` distinct
documents (or the index runs out of them), so ``size`` means documents whatever the length
of the documents that match.

Elasticsearch's own RRF retriever needs a paid licence, so fusion happens here:
``score(d) = Σ_lists 1 / (k + rank_list(d))`` with k = 60 over document ids (chunks within
a document are fused the same way), then each document gets its best chunks, highlights,
a citation and its links.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, NotFoundError, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from boeflow.boe.citations import (
    MONTHS,
    Citation,
    find_citations,
    resolve_offline,
    strip_citations,
)
from boeflow.core.errors import BoeflowError
from boeflow.core.sections import SECTION_CODES
from boeflow.core.textnorm import fold, stem_text
from boeflow.index.client import SearchBackendError
from boeflow.index.embed import Embedder
from boeflow.index.mapping import LINK_FIELDS, IndexNames, link_from_key

Mode = Literal["bm25", "knn", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "knn", "hybrid")
RRF_K = 60
MAX_QUERY_CHARS = 2000
MAX_SIZE = 100
# Lists are sized for documents: top chunks gathered per wanted document at first, widened
# (x4) while they cover fewer documents than wanted, up to Elasticsearch's limits.
BM25_CHUNKS_PER_DOC = 5
KNN_CHUNKS_PER_DOC = 5
MAX_DEPTH = 10_000  # index.max_result_window and kNN's largest k
KNN_MAX_K = MAX_DEPTH
KNN_CANDIDATES_FACTOR = 2


class SearchInputError(BoeflowError, ValueError):
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
        unknown = [s for s in self.sections if s not in SECTION_CODES]
        if unknown:
            raise SearchInputError(f"unknown section {', '.join(unknown)}; "
                                   f"BOE sections are {', '.join(SECTION_CODES)}")
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
    ranks: dict[str, int] = field(default_factory=dict)  # rank of the document per list
    smoke: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id, "title": self.title, "score": round(self.score, 6),
            "rango": self.rango, "department": self.department, "section": self.section,
            "published": self.published, "citation": self.citation, "links": self.links,
            "ranks": self.ranks, "smoke": self.smoke,
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
    """Exact words, accent-folded words and Snowball stems, summed, so a chunk with the exact
    words outranks one that only shares stems. ``cross_fields`` scores each query word by its
    best field and sums over words, so a chunk covering more of the query beats one whose
    short heading happens to hold a single rare word; a phrase match of the whole query in
    the title lifts the document it names (a correction searched by its exact title)."""
    folded = fold(query)

    def words(text: str, fields: list[str]) -> dict[str, Any]:
        return {"multi_match": {"query": text, "type": "cross_fields", "fields": fields}}

    return {"bool": {
        "should": [
            words(query, ["heading^2", "title^2", "path_text^2", "text"]),
            words(folded, ["heading_folded^2", "title_folded^2", "text_folded"]),
            words(stem_text(query), ["heading_stem^2", "title_stem^2", "text_stem"]),
            {"match_phrase": {"title_folded": {"query": folded, "boost": 3}}},
        ],
        "minimum_should_match": 1,
        "filter": filters.clauses(),
    }}


def highlight_query(query: str) -> dict[str, Any]:
    """Only the highlighted fields' own terms: re-running the whole ranking query (stems,
    folded copies, the title phrase) for highlighting doubled a search's latency."""
    return {"multi_match": {"query": query, "fields": ["text", "heading"]}}


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
        except ConnectionTimeout:
            raise SearchBackendError("Elasticsearch did not answer in time "
                                     "(BOEFLOW_ES_REQUEST_TIMEOUT); is it overloaded or hung?"
                                     ) from None
        except ApiError as exc:
            raise SearchBackendError(f"Elasticsearch rejected the search: {exc.message}") from None
        except TransportError as exc:
            raise SearchBackendError(f"Elasticsearch error: {exc}") from None
        return response

    def _missing_index(self) -> SearchBackendError:
        return SearchBackendError(f"index {self.names.chunks} does not exist; run "
                                  "`boeflow es setup` and `boeflow index` first")

    def _knn(self, vector: list[float], k: int, filters: Filters) -> dict[str, Any]:
        knn: dict[str, Any] = {"field": "vector", "query_vector": vector, "k": k,
                               "num_candidates": min(max(k * KNN_CANDIDATES_FACTOR, 100),
                                                     KNN_MAX_K)}
        clauses = filters.clauses()
        if clauses:
            knn["filter"] = clauses
        return knn

    def _vector(self, query: str) -> list[float]:
        if self.embedder is None:
            raise SearchInputError("kNN search needs the embedding model")
        vector: list[float] = self.embedder.embed([query])[0].tolist()
        return vector

    def _bodies(self, query: str, mode: Mode, filters: Filters,
                depth: int) -> dict[str, dict[str, Any]]:
        bodies: dict[str, dict[str, Any]] = {}
        if mode in ("bm25", "hybrid"):
            bodies["bm25"] = {"query": bm25_query(query, filters), "size": depth,
                              "_source": _SOURCE}
        if mode in ("knn", "hybrid"):
            knn = self._knn(self._vector(query), depth, filters)
            knn["num_candidates"] = max(100, depth * 5)
            bodies["knn"] = {"knn": knn, "size": depth, "_source": _SOURCE}
        return bodies

    def _msearch(self, bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Run the named search bodies in one ``_msearch``; {name: response}."""
        searches: list[dict[str, Any]] = []
        for body in bodies.values():
            searches.extend([{"index": self.names.chunks}, body])
        responses = self._call("msearch", searches=searches)["responses"]
        out: dict[str, dict[str, Any]] = {}
        for name, response in zip(bodies, responses, strict=True):
            if "error" in response:
                error = response["error"]
                if response.get("status") == 404 or "index_not_found" in str(error):
                    raise self._missing_index()
                raise SearchBackendError(
                    f"Elasticsearch rejected the {name} search: {_rejection(response)}")
            out[name] = response
        return out

    def search_chunks(self, query: str, mode: Mode, filters: Filters,
                      depth: int) -> list[ChunkHit]:
        """Ranked chunks (no text, not grouped): BM25 and/or kNN in one ``_msearch``, fused
        by RRF over chunk ids. ``search`` is the document-level search users see."""
        query = _check_query(query)
        filters.validate()
        bodies = self._bodies(query, mode, filters, depth)
        lists = {name: response["hits"]["hits"]
                 for name, response in self._msearch(bodies).items()}
        by_id: dict[str, ChunkHit] = {}
        for name, hits in lists.items():
            for rank, hit in enumerate(hits, start=1):
                entry = by_id.setdefault(hit["_id"], _chunk_hit(hit))
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

    def search_documents(self, query: str, mode: Mode, filters: Filters, size: int,
                         chunks_per_doc: int = 3) -> list[DocumentResult]:
        """The top ``size`` documents (fewer only when fewer match), each with its best
        chunks (no text yet).

        Each list asks Elasticsearch for top *chunks* and groups them per document here;
        when the chunks of a few long documents crowd the list and it covers fewer than
        ``size`` documents, the list is widened (x4) until it does or Elasticsearch returns
        fewer chunks than asked (none are left). Field collapsing would group in
        Elasticsearch, but a collapsed query must score every matching chunk (no
        block-max WAND skipping): 5x slower at 100k chunks."""
        query = _check_query(query)
        filters.validate()
        bodies: dict[str, dict[str, Any]] = {}
        depth = {"bm25": max(size * BM25_CHUNKS_PER_DOC, 50),
                 "knn": max(size * KNN_CHUNKS_PER_DOC, 50)}
        vector: list[float] = []
        if mode in ("bm25", "hybrid"):
            bodies["bm25"] = {"query": bm25_query(query, filters), "size": depth["bm25"],
                              "_source": _SOURCE, "track_total_hits": False}
        if mode in ("knn", "hybrid"):
            vector = self._vector(query)
            bodies["knn"] = {"knn": self._knn(vector, depth["knn"], filters),
                             "size": depth["knn"], "_source": _SOURCE}
        responses = self._msearch(bodies)
        while True:
            short = {name: body for name, body in bodies.items()
                     if _needs_more(responses[name]["hits"]["hits"], depth[name], size)}
            if not short:
                break
            for name, body in short.items():
                depth[name] = min(depth[name] * 4, MAX_DEPTH)
                body["size"] = depth[name]
                if name == "knn":
                    body["knn"] = self._knn(vector, depth[name], filters)
            responses.update(self._msearch(short))
        ranked: dict[str, list[tuple[dict[str, Any], list[ChunkHit]]]] = {}
        for name, response in responses.items():
            groups: dict[str, tuple[dict[str, Any], list[ChunkHit]]] = {}
            for hit in response["hits"]["hits"]:
                doc_id = hit["_source"]["doc_id"]
                groups.setdefault(doc_id, (hit, []))[1].append(_chunk_hit(hit))
            ranked[name] = [(top, chunks[:chunks_per_doc])
                            for top, chunks in list(groups.values())[:size]]
        results = _documents(ranked, mode, size, chunks_per_doc)
        cited = self.citation_groups(query, filters)
        if cited:
            results = self._pin(query, filters, results, cited, size, chunks_per_doc)
        return results

    # --- citations ----------------------------------------------------------------------

    def citation_groups(self, query: str, filters: Filters | None = None) -> list[list[str]]:
        """The documents a query's citations point at, in the order they are shown first:
        the cited norms, their corrections, the documents that modify or repeal them, those
        that cite them (corrections first when the query asks for the "corrección de errores
        de…"). Empty when the query cites nothing the index knows."""
        citations = find_citations(query)
        if not citations:
            return []
        targets: list[str] = []
        for cited in citations:
            targets.extend(t for t in self._resolve(cited) if t not in targets)
        if not targets:
            return []
        clauses = (filters or Filters()).clauses()
        exist_body = {"query": {"bool": {"filter": [{"ids": {"values": targets}}, *clauses]}},
                      "size": len(targets), "_source": False, "track_total_hits": False}
        related_body = {
            "query": {"bool": {"filter": [{"terms": {"references.target_id": targets}},
                                          *clauses]}},
            "size": 500, "_source": ["references"], "track_total_hits": False,
            "sort": [{"published": {"order": "desc", "unmapped_type": "date"}}]}
        exist, related = self._call("msearch", searches=[
            {"index": self.names.documents}, exist_body,
            {"index": self.names.documents}, related_body])["responses"]
        present = {hit["_id"] for hit in exist.get("hits", {}).get("hits", [])}
        cited_ids = [t for t in targets if t in present]
        # Free-text words that name a reference's own word ("convalida" for "PUBLICA Acuerdo
        # de convalidación"): the query asks for that related document, not the norm.
        qualifiers = {w[:6] for w in _WORDS.findall(fold(strip_citations(query, citations)))
                      if len(w) >= 5}
        named: list[str] = []
        corrections: list[str] = []
        modifiers: list[str] = []
        citers: list[str] = []
        for hit in related.get("hits", {}).get("hits", []):
            refs = [ref for ref in hit["_source"].get("references", [])
                    if ref.get("target_id") in targets
                    and ref.get("direction", "anterior") == "anterior"]
            relations = {ref.get("relation") for ref in refs}
            if hit["_id"] in cited_ids or not relations:
                continue
            words = {w[:6] for ref in refs for w in _WORDS.findall(fold(ref.get("word") or ""))
                     if len(w) >= 5}
            if words & qualifiers:
                named.append(hit["_id"])
            elif "corrige" in relations:
                corrections.append(hit["_id"])
            elif relations & {"modifica", "deroga"}:
                modifiers.append(hit["_id"])
            else:
                citers.append(hit["_id"])
        if any(c.correction for c in citations):
            return [g for g in (named, corrections, cited_ids, modifiers, citers) if g]
        return [g for g in (named, cited_ids, corrections, modifiers, citers) if g]

    def _resolve(self, cited: Citation) -> list[str]:
        """BOE ids a citation names: known ids directly, the rest looked up in boe-documents
        (ELI, rango + official number or title prefix, resolution date + organ)."""
        known = resolve_offline(cited)
        if known:
            return [known]
        ids = self._lookup(cited)
        if not ids and cited.rango in _STATE_RANGO:
            # "decreto ley 6/2024" as people write it: the State's Real Decreto-ley.
            rango = _STATE_RANGO[cited.rango]
            ids = self._lookup(Citation(**{**cited.__dict__, "rango": rango}))
        return ids

    def _lookup(self, cited: Citation) -> list[str]:
        prefix = ""
        if cited.rango and cited.number:
            prefix = fold(f"{cited.rango} {cited.number}")
        elif cited.kind == "resolucion" and cited.day:
            prefix = fold(f"resolución de {cited.day.day} de "
                          f"{MONTHS[cited.day.month - 1]} de {cited.day.year}")
        should: list[dict[str, Any]] = []
        if cited.eli:  # an ELI names one norm whatever its rango
            should.append({"term": {"eli": cited.eli}})
        if prefix and cited.rango:
            should.append({"bool": {"filter": [{"term": {"rango": cited.rango}}],
                                    "must": [{"match_phrase": {"title_folded": prefix}}]}})
        if not should:
            return []
        body: dict[str, Any] = {"query": {"bool": {"should": should, "minimum_should_match": 1}},
                                "size": 50, "_source": ["title", "eli"],
                                "track_total_hits": False}
        hits = self._call("search", index=self.names.documents, **body)["hits"]["hits"]
        ids: list[str] = []
        for hit in hits:
            source = hit.get("_source", {})
            title = fold(source.get("title") or "")
            by_eli = bool(cited.eli) and source.get("eli") == cited.eli
            if by_eli or (prefix and re.match(re.escape(prefix) + r"(?![\d/])", title)):
                ids.append(hit["_id"])
        if cited.kind == "resolucion" and cited.organ and len(ids) > 1:
            organ_words = set(_WORDS.findall(fold(cited.organ))) - _ORGAN_STOP
            titles = {hit["_id"]: set(_WORDS.findall(fold(hit["_source"].get("title", ""))))
                      for hit in hits}
            best = max(len(organ_words & titles[i]) for i in ids)
            ids = [i for i in ids if len(organ_words & titles[i]) == best]
        if not ids and prefix:
            ids = self._cited_by_others(prefix)
        return ids

    def _cited_by_others(self, prefix: str) -> list[str]:
        """A norm the index does not hold, named by the references of documents it does
        hold: the analysis of an item that corrects or cites "la Orden DSA/383/2020, de 29
        de abril" gives that order's BOE id."""
        body: dict[str, Any] = {"query": {"match_phrase": {"text_folded": prefix}},
                                "size": 20, "_source": ["references"],
                                "track_total_hits": False}
        hits = self._call("search", index=self.names.documents, **body)["hits"]["hits"]
        named = re.compile(r"(?<![\w/])" + re.escape(prefix) + r"(?![\d/])")
        ids: list[str] = []
        for hit in hits:
            for ref in hit.get("_source", {}).get("references", []):
                target = ref.get("target_id")
                if target and target not in ids and named.search(fold(ref.get("text") or "")):
                    ids.append(target)
        return ids

    def _pin(self, query: str, filters: Filters, results: list[DocumentResult],
             groups: list[list[str]], size: int, chunks_per_doc: int) -> list[DocumentResult]:
        """Cited documents first (group by group, each group in the free-text ranking's order),
        then the rest of the ranking."""
        by_id = {r.doc_id: r for r in results}
        normal_rank = {r.doc_id: n for n, r in enumerate(results)}
        pinned: list[str] = []
        for group in groups:
            ordered = sorted(group, key=lambda d: normal_rank.get(d, len(results)))
            pinned.extend(d for d in ordered if d not in pinned)
        pinned = pinned[:size]
        missing = [d for d in pinned if d not in by_id]
        if missing:
            by_id.update({r.doc_id: r for r in self._pinned_results(query, filters, missing,
                                                                     chunks_per_doc)})
        shown = [by_id[d] for d in pinned if d in by_id]
        for n, result in enumerate(shown, start=1):
            result.ranks = {**result.ranks, "citation": n}
        kept = {r.doc_id for r in shown}
        return (shown + [r for r in results if r.doc_id not in kept])[:size]

    def _pinned_results(self, query: str, filters: Filters, doc_ids: list[str],
                        chunks_per_doc: int) -> list[DocumentResult]:
        """Cited documents the free-text ranking did not reach: each with its chunks that best
        match the query (its first chunks when none do)."""
        bodies = {doc_id: {
            "query": {"bool": {"filter": [{"term": {"doc_id": doc_id}}, *filters.clauses()],
                               "should": [bm25_query(query, Filters())]}},
            "size": chunks_per_doc, "_source": _SOURCE, "track_total_hits": False,
            "sort": ["_score", {"start": "asc"}]} for doc_id in doc_ids}
        responses = self._msearch(bodies)
        out = []
        for doc_id in doc_ids:
            hits = responses[doc_id]["hits"]["hits"]
            if not hits:
                continue  # filtered out
            ranked = {"bm25": [(hits[0], [_chunk_hit(h) for h in hits])]}
            out.extend(_documents(ranked, "bm25", 1, chunks_per_doc))
        return out

    def _details(self, query: str, results: list[DocumentResult]) -> None:
        """One ``_msearch`` for what is shown: the text and highlights of the chunks on the
        page (each document's best chunks from the ranking lists, at most size ×
        chunks_per_doc, so only those are highlighted: highlighting costs ~0.15 ms a chunk,
        and re-running the BM25 query over the page's documents to highlight 60 chunks was
        a third of a search's latency), and the documents' links, read from doc values
        (``link_refs``/``link_from``) rather than from the document records, whose sources
        hold whole texts."""
        highlight = {**_HIGHLIGHT, "highlight_query": highlight_query(query)}
        shown_ids = list(dict.fromkeys(c.chunk_id for r in results for c in r.chunks))
        searches: list[dict[str, Any]] = [
            {"index": self.names.chunks}, {
                "query": {"ids": {"values": shown_ids}}, "size": len(shown_ids),
                "_source": ["text"], "highlight": highlight, "track_total_hits": False},
            {"index": self.names.documents}, {
                "query": {"ids": {"values": [r.doc_id for r in results]}}, "size": len(results),
                "_source": False, "docvalue_fields": list(LINK_FIELDS),
                "track_total_hits": False}]
        texts, links = self._call("msearch", searches=searches)["responses"]
        if "error" in texts:
            raise SearchBackendError(
                f"Elasticsearch rejected the text details: {_rejection(texts)}")
        shown = {hit["_id"]: hit for hit in texts["hits"]["hits"]}
        by_doc = {} if "error" in links else {  # links are an extra: never fail a search
            hit["_id"]: hit.get("fields", {}) for hit in links["hits"]["hits"]}
        for result in results:
            for chunk in result.chunks:
                hit = shown.get(chunk.chunk_id, {})
                chunk.text = hit.get("_source", {}).get("text", "")
                chunk.highlights = [f for fragments in hit.get("highlight", {}).values()
                                    for f in fragments]
            fields = by_doc.get(result.doc_id, {})
            decoded = [link_from_key(key) for name in LINK_FIELDS for key in fields.get(name, [])]
            # What changed this document matters most to a reader: show it first.
            result.links = sorted(decoded, key=lambda link: (_LINK_PRIORITY.get(
                link["relation"], len(_LINK_PRIORITY)), link["target_id"]))

    def search(self, query: str, mode: Mode = "hybrid", filters: Filters | None = None,
               size: int = 10, chunks_per_doc: int = 3,
               details: bool = True) -> list[DocumentResult]:
        """``size`` documents (fewer only when fewer match), best first, with their best
        chunks; ``details`` adds chunk text, highlights and links."""
        if size < 1 or size > MAX_SIZE:
            raise SearchInputError(f"--size must be between 1 and {MAX_SIZE}")
        query = _check_query(query)
        results = self.search_documents(query, mode, filters or Filters(), size,
                                        chunks_per_doc)
        if details and results:
            self._details(query, results)
        return results


_WORDS = re.compile(r"\w+")
_STATE_RANGO = {"Decreto": "Real Decreto", "Decreto-ley": "Real Decreto-ley",
                "Decreto Legislativo": "Real Decreto Legislativo"}
_ORGAN_STOP = frozenset(("de", "del", "la", "el", "los", "las", "y", "para", "en"))


def _rejection(response: dict[str, Any]) -> Any:
    """The reason of one failed ``_msearch`` response."""
    error = response["error"]
    return error.get("reason", error) if isinstance(error, dict) else error


def _needs_more(hits: list[dict[str, Any]], depth: int, size: int) -> bool:
    """A full list (more chunks may exist) covering fewer than ``size`` documents."""
    return (len(hits) >= depth < MAX_DEPTH
            and len({hit["_source"]["doc_id"] for hit in hits}) < size)


def _chunk_hit(hit: dict[str, Any]) -> ChunkHit:
    src = hit["_source"]
    return ChunkHit(chunk_id=hit["_id"], doc_id=src["doc_id"], path=src.get("path", []),
                    heading=src.get("heading", ""), text="",
                    score=float(hit.get("_score") or 0.0), source=src)


def _documents(ranked: dict[str, list[tuple[dict[str, Any], list[ChunkHit]]]], mode: Mode,
               size: int, chunks_per_doc: int) -> list[DocumentResult]:
    """Per list, documents in rank order as (top hit, best chunks) → results: one list keeps
    its order and scores; hybrid fuses the document ranks by RRF, and each document's chunks
    by RRF over the lists' chunk ranks."""
    top: dict[str, dict[str, Any]] = {}  # doc id → its best hit (doc-level fields)
    chunk_lists: dict[str, dict[str, list[ChunkHit]]] = {}  # doc id → list → chunks
    ranks: dict[str, dict[str, int]] = {}
    for name, entries in ranked.items():
        for rank, (hit, chunks) in enumerate(entries, start=1):
            doc_id = hit["_source"]["doc_id"]
            top.setdefault(doc_id, hit)
            ranks.setdefault(doc_id, {})[name] = rank
            chunk_lists.setdefault(doc_id, {})[name] = chunks
    if mode == "hybrid":
        order = rrf_fuse({name: [hit["_source"]["doc_id"] for hit, _ in entries]
                          for name, entries in ranked.items()})
    else:
        order = [(hit["_source"]["doc_id"], float(hit["_score"] or 0.0))
                 for hit, _ in ranked[mode]]
    results: list[DocumentResult] = []
    for doc_id, score in order[:size]:
        chunks = _fuse_chunks(chunk_lists[doc_id], mode, chunks_per_doc)
        best = top[doc_id]["_source"]
        results.append(DocumentResult(
            doc_id=doc_id, title=best.get("title", ""), score=score,
            rango=best.get("rango"), department=best.get("department"),
            section=best.get("section"), published=best.get("published"),
            citation=citation(best, chunks[0]), chunks=chunks, ranks=ranks[doc_id],
            smoke=bool(best.get("smoke"))))
    return results


def _fuse_chunks(per_list: dict[str, list[ChunkHit]], mode: Mode,
                 chunks_per_doc: int) -> list[ChunkHit]:
    """A document's best chunks: one list keeps its order and scores, hybrid fuses the
    chunks' ranks in each list by RRF."""
    by_id = {c.chunk_id: c for listed in per_list.values() for c in listed}
    fused = rrf_fuse({name: [c.chunk_id for c in listed] for name, listed in per_list.items()})
    chunks = []
    for chunk_id, chunk_score in fused[:chunks_per_doc]:
        chunk = by_id[chunk_id]
        chunk.ranks = {name: n for name, listed in per_list.items()
                       for n, c in enumerate(listed, start=1) if c.chunk_id == chunk_id}
        if mode == "hybrid":
            chunk.score = chunk_score
        chunks.append(chunk)
    return chunks


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
