"""Indexing, embedding and hybrid-query benchmark against the real Elasticsearch, at the
production embedder's dimension.

In one run:
1. embedding chunks/s on the sample chunks: our embedding stage vs a plain
   ``SentenceTransformer.encode`` (the smoke model: the only one that runs offline);
2. bulk indexing chunks/s on the sample documents (parsed and chunked by boeflow) with
   ``--dims`` vectors: ``index_documents`` (record lookups, stale-chunk check, document
   records, links, base64 vectors) vs ``elasticsearch.helpers.bulk`` of the same chunk
   documents with JSON float vectors, plus where our time goes;
3. for each vector index type (``hnsw``, ``int8_hnsw``, ``bbq_hnsw`` with rescoring), with
   ``--chunks`` synthetic chunks (clustered unit vectors, the real chunk texts recycled):
   kNN recall@10 against exact neighbours computed with numpy, hybrid latency p50/p95 of
   ``Searcher.search`` (boeflow search's code path: two collapsed lists, RRF, text,
   highlights, links) and of one Elasticsearch request carrying ``query`` + ``knn`` (the
   baseline), index size on disk and bulk throughput.

The production embedder cannot run here (no weights offline), so benchmark vectors are
synthetic; query texts map to synthetic query vectors drawn from the same clusters. No model
output is faked: only Elasticsearch work is timed in 2 and 3.

Usage (services running, smoke models built)::

    BOEFLOW_PROFILE=smoke python benchmarks/index_search.py [--dims 1024] [--chunks 100000]
    # the 1M variant (not in CI; needs ~6 GB of disk per index type and a larger heap):
    BOEFLOW_PROFILE=smoke python benchmarks/index_search.py --chunks 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk, streaming_bulk

import boeflow.index.writer as indexer
from boeflow.core.settings import PRODUCTION_EMBEDDER, Settings
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.index.client import drop_indices, get_client, setup_indices
from boeflow.index.embed import Embedder, EmbeddingCache, LocalBackend, Vectors
from boeflow.index.files import expand_paths, parse_and_chunk
from boeflow.index.mapping import IndexNames
from boeflow.index.search import Filters, Searcher, bm25_query
from boeflow.index.writer import chunk_source, document_source, index_documents

REPO = Path(__file__).resolve().parents[1]
INDEX_TYPES = ("hnsw", "int8_hnsw", "bbq_hnsw")
# Published output dimension of the production embedders (their config.json hidden_size),
# used when the model's own config is not in the local Hugging Face cache.
KNOWN_DIMS = {"BAAI/bge-m3": 1024, "littlejohn-ai/bge-m3-spa-law-qa": 1024}


def production_dims() -> int:
    """The production embedder's dimension: its config from the HF cache, else published."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(PRODUCTION_EMBEDDER, "config.json")
        if isinstance(path, str):
            return int(json.loads(Path(path).read_text(encoding="utf-8"))["hidden_size"])
    except (ImportError, OSError, KeyError, ValueError):
        pass
    return KNOWN_DIMS[PRODUCTION_EMBEDDER]


class ClusteredVectors:
    """Unit vectors with realistic structure: topics on the sphere, sub-topics around each
    topic, each vector a sub-topic plus noise. Neighbourhoods overlap (sub-topics of a
    topic are close, noise is as large as the sub-topic offset), so exact neighbours are
    not trivially separable and HNSW recall can be lost, unlike uniform noise or
    well-separated clusters."""

    def __init__(self, dims: int, clusters: int, seed: int = 7, subtopics: int = 10,
                 spread: float = 1.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.dims = dims
        topics = self._unit(self.rng.standard_normal((clusters, dims)))
        offsets = self.rng.standard_normal((clusters, subtopics, dims)) * (0.8 / np.sqrt(dims))
        self.centres = self._unit((topics[:, None, :] + offsets).reshape(-1, dims))
        self.spread = spread

    @staticmethod
    def _unit(matrix: np.ndarray[Any, Any]) -> Vectors:
        return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)

    def draw(self, n: int) -> Vectors:
        picks = self.rng.integers(0, len(self.centres), n)
        noise = self.rng.standard_normal((n, self.dims)).astype(np.float32)
        noise *= self.spread / np.sqrt(self.dims)
        return self._unit(self.centres[picks] + noise)


class SyntheticBackend:
    """An embedding backend for the Elasticsearch measurements: deterministic clustered
    vectors of the production dimension per text (not a model; labelled as synthetic)."""

    def __init__(self, dims: int) -> None:
        self.model_key = f"synthetic-{dims}d"
        self._dims = dims
        self.source = ClusteredVectors(dims, clusters=64, seed=11)

    @property
    def dimension(self) -> int:
        return self._dims

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.source.draw(len(texts))


class QueryVectors:
    """Maps each benchmark query text to its synthetic query vector (duck-types Embedder
    for ``Searcher``: the query path is measured, not a model)."""

    def __init__(self, queries: Sequence[str], vectors: Vectors) -> None:
        self.by_text = {" ".join(q.split()): v for q, v in zip(queries, vectors, strict=True)}

    def embed(self, texts: Sequence[str]) -> Vectors:
        return np.stack([self.by_text[" ".join(t.split())] for t in texts])


def pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(values, p))


def load_samples(settings: Settings) -> list[tuple[ParsedDocument, list[Chunk]]]:
    files = expand_paths([REPO / "samples" / "boe" / "documents"])
    return [(doc, chunks) for _, doc, chunks, err in parse_and_chunk(files, settings)
            if doc is not None and err is None]


def bench_embedding(settings: Settings, texts: list[str]) -> tuple[float, float]:
    backend = LocalBackend(settings)
    backend.encode(texts[:8])  # load + warm up
    t0 = time.perf_counter()
    backend.model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
    plain_s = time.perf_counter() - t0
    ours = Embedder(backend=backend, cache=None)
    t0 = time.perf_counter()
    ours.embed(texts)
    ours_s = time.perf_counter() - t0
    return len(texts) / ours_s, len(texts) / plain_s


class Timings:
    """Wall time spent in named functions of the indexer (a breakdown of ``index_documents``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.originals: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        original = getattr(owner, name)
        seconds = self.seconds
        key = label or name

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - t0

        self.originals.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self.originals):
            setattr(owner, name, original)


def bench_bulk(client: Elasticsearch, settings: Settings, dims: int,
               pairs: list[tuple[ParsedDocument, list[Chunk]]], rounds: int) -> dict[str, Any]:
    """Ours vs helpers.bulk over the sample chunks with ``dims``-d vectors (best of rounds)."""
    chunks = [c for _, cs in pairs for c in cs]
    by_doc = {doc.id: doc for doc, _ in pairs}
    cache_path = Path("/tmp/bench-embed-synthetic.sqlite")  # benchmark scratch
    embedder = Embedder(backend=SyntheticBackend(dims), cache=EmbeddingCache(cache_path))
    vectors = embedder.embed([c.text for c in chunks])  # vectors ready: time indexing only
    ours_names, base_names = IndexNames("bench-ours-"), IndexNames("bench-base-")
    best: dict[str, Any] = {"ours": float("inf"), "base": float("inf"), "base_b64": float("inf")}
    for _ in range(rounds):
        for names in (ours_names, base_names):
            drop_indices(client, names)
            setup_indices(client, settings.model_copy(
                update={"es_index_prefix": names.prefix}), dims)
        timings = Timings()
        for name in ("_stored_documents", "existing_chunks", "chunk_source", "document_source",
                     "refresh_links"):
            timings.wrap(indexer, name)
        timings.wrap(embedder, "embed", "embedding cache reads")
        original_bulk = indexer._bulk

        def labelled_bulk(c: Elasticsearch, actions: list[dict[str, Any]],
                          _orig: Callable[..., dict[str, str]] = original_bulk,
                          timings: Timings = timings) -> dict[str, str]:
            kind = "bulk (chunks + stale deletes)" if actions and actions[0]["_index"] == (
                ours_names.chunks) else "bulk (records, links)"
            t0 = time.perf_counter()
            try:
                return _orig(c, actions)
            finally:
                timings.seconds[kind] += time.perf_counter() - t0

        indexer._bulk = labelled_bulk  # type: ignore[assignment]
        t0 = time.perf_counter()
        try:
            report = index_documents(client.options(request_timeout=300), ours_names, embedder,
                                     pairs, smoke=True)
        finally:
            indexer._bulk = original_bulk  # type: ignore[assignment]
            timings.restore()
        ours_s = time.perf_counter() - t0
        assert not report.failed, report.failed
        if ours_s < best["ours"]:
            best["ours"], best["breakdown"] = ours_s, dict(timings.seconds)
        # Baseline: the same chunk documents, vectors as JSON float lists, plain helpers.bulk.
        docs = [chunk_source(c, by_doc[c.doc_id], vectors[i], embedder.model_key, True)
                for i, c in enumerate(chunks)]
        for i, doc in enumerate(docs):
            doc["vector"] = vectors[i].tolist()
        actions = [{"_index": base_names.chunks, "_id": c.id, "_source": doc}
                   for c, doc in zip(chunks, docs, strict=True)]
        t0 = time.perf_counter()
        bulk(client.options(request_timeout=300), actions, chunk_size=500)
        client.indices.refresh(index=base_names.chunks)
        best["base"] = min(best["base"], time.perf_counter() - t0)
    for names in (ours_names, base_names):
        drop_indices(client, names)
    cache_path.unlink(missing_ok=True)
    best["chunks"] = len(chunks)
    return best


def exact_neighbours(matrix: Vectors, queries: Vectors, k: int) -> np.ndarray[Any, Any]:
    """Top-k ids by cosine (unit vectors: dot product), exact, blockwise."""
    out = []
    for start in range(0, len(queries), 64):
        scores = queries[start:start + 64] @ matrix.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def bench_index_type(client: Elasticsearch, settings: Settings, kind: str, dims: int,
                     pairs: list[tuple[ParsedDocument, list[Chunk]]], matrix: Vectors,
                     query_vecs: Vectors) -> dict[str, Any]:
    """Load ``matrix`` into a fresh index of ``kind``, force-merge it; size, bulk throughput
    and kNN recall@10 against exact neighbours. The index is kept for the latency run."""
    chunks = [c for _, cs in pairs for c in cs]
    by_doc = {doc.id: doc for doc, _ in pairs}
    names = IndexNames(f"bench-{kind.replace('_', '')}-")
    drop_indices(client, names)
    bench_settings = settings.model_copy(update={"es_index_prefix": names.prefix,
                                                 "es_vector_index": kind})
    setup_indices(client, bench_settings, dims)
    # The real document records (full text, references) of the recycled documents: the
    # search path reads their links.
    records = {doc.id: document_source(doc, doc_chunks, "bench", "bench", True)
               for doc, doc_chunks in pairs}
    bulk(client.options(request_timeout=600),
         ({"_index": names.documents, "_id": f"{doc_id}-syn{copy}",
           "_source": {**record, "doc_id": f"{doc_id}-syn{copy}"}}
          for copy in range(len(matrix) // len(chunks) + 1) for doc_id, record in records.items()),
         chunk_size=50, max_chunk_bytes=16 * 1024 * 1024)

    def actions() -> Iterator[dict[str, Any]]:
        for n in range(len(matrix)):
            base = chunks[n % len(chunks)]
            src = chunk_source(base, by_doc[base.doc_id], matrix[n], "synthetic", True)
            src["doc_id"] = f"{base.doc_id}-syn{n // len(chunks)}"
            yield {"_index": names.chunks, "_id": f"syn-{n}", "_source": src}

    t0 = time.perf_counter()
    for ok, item in streaming_bulk(client.options(request_timeout=600), actions(),
                                   chunk_size=500, max_chunk_bytes=16 * 1024 * 1024,
                                   raise_on_error=False):
        assert ok, item
    client.options(request_timeout=600).indices.refresh(index=names.chunks)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.options(request_timeout=3600).indices.forcemerge(index=names.chunks,
                                                            max_num_segments=1)
    merge_s = time.perf_counter() - t0
    stats = client.indices.stats(index=names.chunks, metric="store")
    size = stats["_all"]["primaries"]["store"]["size_in_bytes"]

    # kNN recall@10 vs exact, with the candidate list boeflow's search uses.
    truth = exact_neighbours(matrix, query_vecs, 10)
    recalls = []
    for q, vec in enumerate(query_vecs):
        hits = client.search(index=names.chunks, size=10, source=False, knn={
            "field": "vector", "query_vector": vec.tolist(), "k": 10,
            "num_candidates": 100})["hits"]["hits"]
        found = {int(h["_id"][4:]) for h in hits}
        recalls.append(len(found & set(truth[q].tolist())) / 10)

    return {"kind": kind, "names": names, "recall@10": statistics.mean(recalls),
            "size_mb": size / 1e6, "bulk_per_s": len(matrix) / load_s, "merge_s": merge_s}


def bench_latency(client: Elasticsearch, rows: list[dict[str, Any]], query_texts: list[str],
                  query_vecs: Vectors) -> None:
    """Hybrid latency of boeflow search's code path and of one request with query + knn,
    for every index type, interleaved query by query so that the load of the (shared)
    machine falls on all of them alike."""
    searchers = {row["kind"]: Searcher(client, row["names"], QueryVectors(  # type: ignore[arg-type]
        query_texts, query_vecs)) for row in rows}
    for searcher in searchers.values():
        for q in query_texts[:10]:  # warm up
            searcher.search(q, "hybrid", Filters(), size=10)
    times: dict[str, dict[str, list[float]]] = {row["kind"]: {"ours": [], "base": [],
                                                              "docs": []} for row in rows}
    for q, vec in zip(query_texts, query_vecs, strict=True):
        for row in rows:
            kind = row["kind"]
            t0 = time.perf_counter()
            results = searchers[kind].search(q, "hybrid", Filters(), size=10)
            times[kind]["ours"].append((time.perf_counter() - t0) * 1000)
            times[kind]["docs"].append(len(results))
            t0 = time.perf_counter()
            client.search(index=row["names"].chunks, size=10, query=bm25_query(q, Filters()),
                          knn={"field": "vector", "query_vector": vec.tolist(), "k": 100,
                               "num_candidates": 500}, source_includes=["doc_id", "heading"])
            times[kind]["base"].append((time.perf_counter() - t0) * 1000)
    for row in rows:
        measured = times[row["kind"]]
        row.update(ours_p50=pct(measured["ours"], 50), ours_p95=pct(measured["ours"], 95),
                   base_p50=pct(measured["base"], 50), base_p95=pct(measured["base"], 95),
                   min_docs=min(measured["docs"]))


def choose(results: list[dict[str, Any]]) -> dict[str, Any]:
    """recall@10 >= 0.95 against exact, then the lowest hybrid p95."""
    good = [r for r in results if r["recall@10"] >= 0.95] or results
    return min(good, key=lambda r: r["ours_p95"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dims", type=int, default=None,
                        help="vector dimension (default: the production embedder's)")
    parser.add_argument("--chunks", "--synthetic", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-types", default=",".join(INDEX_TYPES))
    parser.add_argument("--bulk-rounds", type=int, default=3)
    parser.add_argument("--skip-embedding", action="store_true")
    args = parser.parse_args()
    dims = args.dims or production_dims()

    settings = Settings()
    client = get_client(settings).options(request_timeout=120)
    pairs = load_samples(settings)
    chunks = [c for _, cs in pairs for c in cs]
    texts = [c.text for c in chunks]
    print(f"{len(pairs)} documents, {len(chunks)} chunks, profile={settings.profile}, "
          f"dims={dims}, synthetic chunks={args.chunks}")

    if not args.skip_embedding:
        embed_ours, embed_base = bench_embedding(settings, texts)
        print(f"embedding (smoke model): ours {embed_ours:.1f} chunks/s, plain encode "
              f"{embed_base:.1f} chunks/s")

    result = bench_bulk(client, settings, dims, pairs, args.bulk_rounds)
    index_ours = result["chunks"] / result["ours"]
    index_base = result["chunks"] / result["base"]
    print(f"bulk indexing {result['chunks']} chunks at {dims}-d: ours {index_ours:.0f} chunks/s "
          f"(incl. record lookups, stale-chunk check, document records, links), "
          f"helpers.bulk {index_base:.0f} chunks/s")
    parts = result["breakdown"]
    # refresh_links includes its own bulk of link updates (also counted under bulk records).
    other = result["ours"] - sum(v for k, v in parts.items() if k != "refresh_links")
    print("  where our time goes (s): " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
          + f", other (final refresh, loop) {other:.3f}; total {result['ours']:.3f}")

    clusters = max(args.chunks // 1000, 10)  # 100 topics x 10 sub-topics at 100k chunks
    source = ClusteredVectors(dims, clusters=clusters, seed=7)
    matrix = source.draw(args.chunks)
    query_vecs = source.draw(args.queries)
    query_texts = [f"{c.heading or c.text[:60]} #{n}" for n, c in
                   enumerate(chunks[(i * 7) % len(chunks)] for i in range(args.queries))]
    table = []
    for kind in args.index_types.split(","):
        row = bench_index_type(client, settings, kind, dims, pairs, matrix, query_vecs)
        table.append(row)
        print(f"{kind:<10} loaded: recall@10 {row['recall@10']:.3f}  size "
              f"{row['size_mb']:.0f} MB  bulk {row['bulk_per_s']:.0f} chunks/s  forcemerge "
              f"{row['merge_s']:.0f} s", flush=True)
    bench_latency(client, table, query_texts, query_vecs)
    for row in table:
        drop_indices(client, row["names"])
        kind = row["kind"]
        print(f"{kind:<10} recall@10 {row['recall@10']:.3f}  hybrid ours p50 "
              f"{row['ours_p50']:.1f} ms p95 {row['ours_p95']:.1f} ms  single-request p50 "
              f"{row['base_p50']:.1f} ms p95 {row['base_p95']:.1f} ms  size "
              f"{row['size_mb']:.0f} MB  bulk {row['bulk_per_s']:.0f} chunks/s  forcemerge "
              f"{row['merge_s']:.0f} s  min documents per page {row['min_docs']}", flush=True)
    chosen = choose(table)
    print(f"chosen index_options: {chosen['kind']} (recall@10 >= 0.95, then lowest p95)")
    print("| index_options | recall@10 vs exact | hybrid p50 / p95 (ms) | single request "
          "p50 / p95 (ms) | index size (MB) | bulk (chunks/s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in table:
        print(f"| `{row['kind']}` | {row['recall@10']:.3f} | {row['ours_p50']:.1f} / "
              f"{row['ours_p95']:.1f} | {row['base_p50']:.1f} / {row['base_p95']:.1f} | "
              f"{row['size_mb']:.0f} | {row['bulk_per_s']:.0f} |")
    print(f"BENCH index_bulk ours={index_ours:.1f} baseline={index_base:.1f} unit=chunks/s "
          f"ratio={index_ours / index_base:.2f}")
    print(f"BENCH hybrid_p95 ours={chosen['ours_p95']:.1f} baseline={chosen['base_p95']:.1f} "
          f"unit=ms ratio={chosen['base_p95'] / chosen['ours_p95']:.2f}")
    if not args.skip_embedding:
        print(f"BENCH embed ours={embed_ours:.1f} baseline={embed_base:.1f} unit=chunks/s "
              f"ratio={embed_ours / embed_base:.2f}")


if __name__ == "__main__":
    main()
