"""Indexing, embedding and hybrid-query benchmark against the real Elasticsearch.

In one run, on the sample documents (parsed and chunked by boeflow):
1. bulk indexing chunks/s: our indexer (bounded streaming bulk, ids, error accounting)
   vs a plain ``elasticsearch.helpers.bulk`` loop, same chunks and vectors;
2. embedding chunks/s: our embedding stage vs a plain ``SentenceTransformer.encode``;
3. hybrid query latency p50/p95 with N synthetic chunks (unit vectors) in the index: ours
   (BM25 + kNN requests, RRF in Python, grouping) vs one Elasticsearch request carrying both
   ``query`` and ``knn`` (the licence-free linear combination) as the baseline.

Usage (services running, smoke models built)::

    BOEFLOW_PROFILE=smoke python benchmarks/index_search.py [--synthetic 100000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from elasticsearch.helpers import bulk

from boeflow.config import Settings
from boeflow.embed import Embedder, EmbeddingCache, LocalBackend
from boeflow.index.client import get_client, setup_indices
from boeflow.index.indexer import chunk_source, index_documents
from boeflow.index.mapping import IndexNames
from boeflow.pipeline import expand_paths, parse_and_chunk
from boeflow.search import Filters, Searcher, bm25_query

REPO = Path(__file__).resolve().parents[1]


def _drop(client, names: IndexNames) -> None:  # type: ignore[no-untyped-def]
    drop_indices(client, names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    settings = Settings()
    client = get_client(settings)
    files = expand_paths([REPO / "samples" / "boe" / "documents"])
    pairs = [(doc, chunks) for _, doc, chunks, err in parse_and_chunk(files, settings)
             if doc is not None and err is None]
    chunks = [c for _, cs in pairs for c in cs]
    texts = [c.text for c in chunks]
    print(f"{len(pairs)} documents, {len(chunks)} chunks, profile={settings.profile}")

    # 2. Embedding: ours (no cache, so model work is compared) vs plain encode.
    backend = LocalBackend(settings)
    backend.encode(texts[:8])  # load + warm up
    plain = backend.model
    t0 = time.perf_counter()
    plain.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
    plain_s = time.perf_counter() - t0
    ours = Embedder(backend=backend, cache=None)
    t0 = time.perf_counter()
    vectors = ours.embed(texts)
    ours_s = time.perf_counter() - t0
    embed_ours, embed_base = len(texts) / ours_s, len(texts) / plain_s
    print(f"embedding: ours {embed_ours:.1f} chunks/s, plain encode {embed_base:.1f} chunks/s")

    # 1. Bulk indexing: ours vs helpers.bulk, fresh indices each.
    ours_names = IndexNames("bench-ours-")
    base_names = IndexNames("bench-base-")
    for names in (ours_names, base_names):
        _drop(client, names)
        setup_indices(client, settings.model_copy(update={"es_index_prefix": names.prefix}),
                      backend.dimension)
    cached = Embedder(backend=backend, cache=EmbeddingCache(Path("/tmp/bench-embed.sqlite")))
    cached.embed(texts)  # vectors ready: time the indexing, not the model
    t0 = time.perf_counter()
    report = index_documents(client, ours_names, cached, pairs, smoke=settings.is_smoke)
    ours_index_s = time.perf_counter() - t0
    assert not report.failed, report.failed
    by_doc = {doc.id: doc for doc, _ in pairs}
    actions = [{"_index": base_names.chunks, "_id": c.id,
                "_source": chunk_source(c, by_doc[c.doc_id], vectors[i].tolist(),
                                        backend.model_key, settings.is_smoke)}
               for i, c in enumerate(chunks)]
    t0 = time.perf_counter()
    bulk(client, actions, chunk_size=500)
    client.indices.refresh(index=base_names.chunks)
    base_index_s = time.perf_counter() - t0
    index_ours, index_base = len(chunks) / ours_index_s, len(chunks) / base_index_s
    print(f"bulk indexing: ours {index_ours:.0f} chunks/s (incl. document records, "
          f"stale-chunk check, links), helpers.bulk {index_base:.0f} chunks/s")

    # 3. Hybrid latency with N synthetic chunks.
    syn = IndexNames("bench-syn-")
    _drop(client, syn)
    syn_settings = settings.model_copy(update={"es_index_prefix": syn.prefix})
    setup_indices(client, syn_settings, backend.dimension)
    rng = np.random.default_rng(7)
    dim = backend.dimension
    t0 = time.perf_counter()

    def synthetic():  # type: ignore[no-untyped-def]
        for n in range(args.synthetic):
            base = chunks[n % len(chunks)]
            vec = rng.standard_normal(dim).astype(np.float32)
            vec /= np.linalg.norm(vec)
            src = chunk_source(base, by_doc[base.doc_id], vec.round(5).tolist(),
                               backend.model_key, True)
            src["doc_id"] = f"{base.doc_id}-syn{n // len(chunks)}"
            yield {"_index": syn.chunks, "_id": f"syn-{n}", "_source": src}

    bulk(client.options(request_timeout=300), synthetic(), chunk_size=1000)
    client.indices.refresh(index=syn.chunks)
    client.options(request_timeout=1800).indices.forcemerge(index=syn.chunks, max_num_segments=1)
    print(f"loaded {args.synthetic} synthetic chunks in {time.perf_counter() - t0:.0f}s")
    searcher = Searcher(client, syn, cached)
    queries = [c.heading or c.text[:60] for c in chunks][: args.queries]
    cached.embed(queries)
    ours_ms, base_ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        searcher.search(q, "hybrid", Filters(), size=10)
        ours_ms.append((time.perf_counter() - t0) * 1000)
        vec = cached.embed([q])[0].tolist()
        t0 = time.perf_counter()
        client.search(index=syn.chunks, size=10, query=bm25_query(q, Filters()),
                      knn={"field": "vector", "query_vector": vec, "k": 100,
                           "num_candidates": 500}, source_includes=["doc_id", "heading"])
        base_ms.append((time.perf_counter() - t0) * 1000)

    def pct(values: list[float], p: float) -> float:
        return float(np.percentile(values, p))

    print(f"hybrid latency over {args.synthetic} chunks: ours p50 {pct(ours_ms, 50):.1f} ms "
          f"p95 {pct(ours_ms, 95):.1f} ms; single-request baseline p50 "
          f"{pct(base_ms, 50):.1f} ms p95 {pct(base_ms, 95):.1f} ms "
          f"(mean ours {statistics.mean(ours_ms):.1f} ms)")
    for names in (ours_names, base_names, syn):
        _drop(client, names)
    print(f"BENCH index_bulk ours={index_ours:.1f} baseline={index_base:.1f} unit=chunks/s "
          f"ratio={index_ours / index_base:.2f}")
    print(f"BENCH hybrid_p95 ours={pct(ours_ms, 95):.1f} baseline={pct(base_ms, 95):.1f} "
          f"unit=ms ratio={pct(base_ms, 95) / pct(ours_ms, 95):.2f}")
    print(f"BENCH embed ours={embed_ours:.1f} baseline={embed_base:.1f} unit=chunks/s "
          f"ratio={embed_ours / embed_base:.2f}")


if __name__ == "__main__":
    main()
