"""Indexing and hybrid search on the real Elasticsearch, with every sample document parsed,
chunked and embedded by the smoke embedder (production code paths, smoke weights)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from boeflow.core.settings import Settings
from boeflow.evals.retrieval import CITATION_QUERIES, NATURAL_QUERIES, evaluate, load_set
from boeflow.index.client import drop_indices, get_client, names_for, setup_indices
from boeflow.index.embed import build_embedder
from boeflow.index.files import index_files, make_chunker
from boeflow.index.kibana import load_objects, referenced_fields
from boeflow.index.mapping import IndexNames
from boeflow.index.search import Filters, Searcher, rrf_fuse
from boeflow.index.writer import existing_chunk_ids, index_documents
from boeflow.parse import parse_file
from tests.conftest import DOCUMENTS, SEARCH_CORPUS
from tests.support.cli import run_boeflow

pytestmark = pytest.mark.integration
PREFIX = "it-"


def _drop(client: Elasticsearch, prefix: str) -> None:
    drop_indices(client, IndexNames(prefix))
    for alias in IndexNames(prefix).all():
        client.options(ignore_status=404).indices.delete_index_template(
            name=f"{alias}-template")


@pytest.fixture(scope="module")
def es_settings(live_settings: Settings, smoke_models_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(profile="smoke", smoke_models_dir=smoke_models_dir, es_url=live_settings.es_url,
                    es_index_prefix=PREFIX, data_dir=tmp_path_factory.mktemp("search-data"))


@pytest.fixture(scope="module")
def indexed(es_settings: Settings) -> Iterator[dict[str, object]]:
    client = get_client(es_settings)
    _drop(client, PREFIX)
    files = list(SEARCH_CORPUS)
    first = index_files(files, es_settings)
    yield {"client": client, "files": files, "first": first}


@pytest.fixture(scope="module")
def searcher(es_settings: Settings, indexed: dict[str, object]) -> Searcher:
    return Searcher(get_client(es_settings), names_for(es_settings), build_embedder(es_settings))


def test_every_sample_is_indexed(indexed: dict[str, object], es_settings: Settings) -> None:
    report = indexed["first"]
    files = indexed["files"]
    assert report.failed == {}, report.failed  # type: ignore[attr-defined]
    assert report.documents == len(files) == 22  # type: ignore[attr-defined,arg-type]
    client = get_client(es_settings)
    names = names_for(es_settings)
    assert client.count(index=names.documents)["count"] == 22
    assert client.count(index=names.chunks)["count"] == report.chunks  # type: ignore[attr-defined]


def test_reindexing_a_finished_set_changes_nothing_and_embeds_nothing(
        indexed: dict[str, object], es_settings: Settings) -> None:
    again = index_files(indexed["files"], es_settings)  # type: ignore[arg-type]
    assert again.skipped_unchanged == again.documents == 22
    assert again.embedded == 0
    assert again.deleted_stale == 0


def test_constitution_article_14_ranks_first_with_bm25(searcher: Searcher) -> None:
    results = searcher.search("artículo 14 igualdad ante la ley", "bm25", size=5)
    assert results[0].doc_id == "BOE-A-1978-31229"
    assert results[0].chunks[0].heading.startswith("Artículo 14")
    citation = results[0].citation
    assert citation["boe_id"] == "BOE-A-1978-31229"
    assert citation["url"].startswith("https://www.boe.es/")
    assert "Artículo 14" in citation["path"]


def test_every_shown_chunk_has_its_text_and_highlights(searcher: Searcher) -> None:
    """The details request fills exactly the chunks on the page, in every mode."""
    for mode in ("bm25", "hybrid", "knn"):
        results = searcher.search("artículo 14 igualdad ante la ley", mode, size=5)  # type: ignore[arg-type]
        assert results, mode
        for result in results:
            for chunk in result.chunks:
                assert chunk.text.strip(), (mode, chunk.chunk_id)
    top = searcher.search("artículo 14 igualdad ante la ley", "hybrid", size=5)[0]
    assert top.doc_id == "BOE-A-1978-31229"
    assert "iguales ante la ley" in top.chunks[0].text
    assert any("«ley»" in fragment for fragment in top.chunks[0].highlights), \
        top.chunks[0].highlights


def test_unaccented_query_finds_accented_text(searcher: Searcher) -> None:
    results = searcher.search("articulo 14 igualdad ante la ley constitucion", "bm25", size=3)
    assert results[0].doc_id == "BOE-A-1978-31229"
    assert results[0].chunks[0].heading.startswith("Artículo 14")


def test_filters(searcher: Searcher) -> None:
    hits = searcher.search("resolución", "bm25", Filters(sections=("3",)), size=20)
    assert hits and all(r.section == "3" for r in hits)
    hits = searcher.search("ayudas daños DANA", "bm25",
                           Filters(since=date(2024, 11, 1), until=date(2024, 11, 30)),
                           size=20)
    assert hits and all("2024-11-01" <= (r.published or "") <= "2024-11-30" for r in hits)
    hits = searcher.search("orden", "bm25", Filters(department="Interior"), size=20)
    assert hits and all("Interior" in (r.department or "") for r in hits)
    hits = searcher.search("real decreto", "bm25", Filters(rango="Real Decreto-ley"), size=20)
    assert sorted(r.doc_id for r in hits) == ["BOE-A-2024-22928", "BOE-A-2024-23422"]


def test_hybrid_is_the_rrf_fusion_of_both_lists(searcher: Searcher) -> None:
    query = "plazo de solicitud de las ayudas"
    bm25 = [h.chunk_id for h in searcher.search_chunks(query, "bm25", Filters(), depth=20)]
    knn = [h.chunk_id for h in searcher.search_chunks(query, "knn", Filters(), depth=20)]
    hybrid = searcher.search_chunks(query, "hybrid", Filters(), depth=20)
    expected = rrf_fuse({"bm25": bm25, "knn": knn}, k=60)
    assert [h.chunk_id for h in hybrid] == [chunk_id for chunk_id, _ in expected]
    assert {h.chunk_id for h in hybrid} == set(bm25) | set(knn)
    for hit, (_, score) in zip(hybrid, expected, strict=True):
        assert hit.score == pytest.approx(score)


def test_correction_links_appear_on_the_corrected_document(searcher: Searcher) -> None:
    corrected = searcher.search("Real Decreto-ley 6/2024 medidas urgentes DANA", "bm25",
                                Filters(rango="Real Decreto-ley"), size=1)[0]
    assert corrected.doc_id == "BOE-A-2024-22928"
    assert {"relation": "corregido_por", "target_id": "BOE-A-2024-24097"} in [
        {"relation": link["relation"], "target_id": link["target_id"]}
        for link in corrected.links]
    correction = searcher.search("corrección de errores Real Decreto-ley 6/2024", "bm25",
                                 Filters(rango="Corrección (errores o erratas)",
                                         since=date(2024, 11, 20)), size=1)[0]
    assert correction.doc_id == "BOE-A-2024-24097"
    assert {"relation": "corrige", "target_id": "BOE-A-2024-22928"} in [
        {"relation": link["relation"], "target_id": link["target_id"]}
        for link in correction.links]


def test_changing_one_article_changes_only_its_chunks(es_settings: Settings,
                                                     tmp_path: Path) -> None:
    client = get_client(es_settings)
    names = names_for(es_settings)
    embedder = build_embedder(es_settings)
    chunker = make_chunker(es_settings)  # the chunking that indexed the samples
    original = DOCUMENTS / "BOE-A-2024-24105.xml"
    doc = parse_file(original)
    before = chunker(doc)
    # A real edit of the published XML: one sentence of Artículo 2 changes.
    sentence = "bajo la dependencia orgánica y funcional de la persona titular del Ministerio"
    raw = original.read_text(encoding="utf-8")
    assert raw.count(sentence) == 1
    edited = tmp_path / original.name
    edited.write_text(raw.replace(sentence, sentence.replace("orgánica y ", "")),
                      encoding="utf-8")
    changed = parse_file(edited)
    after = chunker(changed)
    new_ids = {c.id for c in after} - {c.id for c in before}
    assert len(new_ids) == 1
    (new_chunk,) = [c for c in after if c.id in new_ids]
    assert new_chunk.heading.startswith("Artículo 2")
    report = index_documents(client, names, embedder, [(changed, after)], smoke=True)
    assert report.failed == {}
    assert report.embedded == 1
    assert report.deleted_stale == 1
    assert existing_chunk_ids(client, names, doc.id) == {c.id for c in after}
    # Back to the original so other tests see the real document.
    index_documents(client, names, embedder, [(doc, before)], smoke=True)
    assert existing_chunk_ids(client, names, doc.id) == {c.id for c in before}


def test_bulk_rejection_names_the_affected_document(es_settings: Settings) -> None:
    client = get_client(es_settings)
    wrong = es_settings.model_copy(update={"es_index_prefix": "it-wrongdims-"})
    _drop(client, "it-wrongdims-")
    embedder = build_embedder(wrong)
    setup_indices(client, wrong, embedder.dimension + 1)  # a mapping the vectors violate
    doc = parse_file(DOCUMENTS / "BOE-A-2024-25801.xml")
    chunks = make_chunker(wrong)(doc)
    report = index_documents(client, names_for(wrong), embedder, [(doc, chunks)], smoke=True)
    assert list(report.failed) == ["BOE-A-2024-25801"]
    assert "dims" in report.failed["BOE-A-2024-25801"] or "dimension" in report.failed[
        "BOE-A-2024-25801"]
    assert client.count(index=names_for(wrong).documents)["count"] == 0  # retried next run
    _drop(client, "it-wrongdims-")


def test_known_item_evaluation(searcher: Searcher) -> None:
    queries = load_set()
    assert len(queries) >= 30
    report = evaluate(searcher, queries)
    print("\nknown-item retrieval:", json.dumps(report, indent=1))
    assert report["bm25"]["recall@10"] >= 0.8
    assert report["bm25"]["mrr@10"] >= 0.5
    for mode in ("knn", "hybrid"):
        assert 0.0 <= report[mode]["recall@10"] <= 1.0


def test_kibana_saved_objects_use_only_real_fields(es_settings: Settings,
                                                   indexed: dict[str, object]) -> None:
    client = get_client(es_settings)
    used = referenced_fields(load_objects())
    assert set(used) == {"boe-documents", "boe-chunks", "boe-digests"}
    for title, fields in used.items():
        if title == "boe-digests":
            continue  # checked against a published digest in test_delivery.py
        index = f"{PREFIX}{title}"
        mapping = client.indices.get_field_mapping(index=index, fields=sorted(fields))
        found = {name for idx in mapping.values() for name in idx["mappings"]}
        assert fields <= found, f"{title}: {sorted(fields - found)} missing from the mapping"


def test_cli_search_json_and_clear_errors(es_settings: Settings,
                                          indexed: dict[str, object]) -> None:
    env = {"BOEFLOW_PROFILE": "smoke",
           "BOEFLOW_SMOKE_MODELS_DIR": str(es_settings.smoke_models_dir),
           "BOEFLOW_ES_URL": es_settings.es_url, "BOEFLOW_ES_INDEX_PREFIX": PREFIX,
           "BOEFLOW_DATA_DIR": str(es_settings.data_dir)}
    ok = run_boeflow(["search", "artículo 14 igualdad ante la ley", "--mode", "bm25", "--json"],
                     extra=env)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["results"][0]["doc_id"] == "BOE-A-1978-31229"
    assert data["results"][0]["citation"]["boe_id"] == "BOE-A-1978-31229"

    cases = [
        (["search", "", "--mode", "bm25"], env, "empty query"),
        (["search", "x" * 10_000, "--mode", "bm25"], env, "query too long"),
        (["search", "ley", "--mode", "bm25", "--section", "9"], env, "unknown section"),
        (["search", "ley", "--mode", "bm25"], {**env, "BOEFLOW_ES_INDEX_PREFIX": "nothere-"},
         "does not exist"),
        (["search", "ley", "--mode", "bm25"], {**env, "BOEFLOW_ES_URL": "http://127.0.0.1:1"},
         "not reachable"),
    ]
    for args, case_env, expected in cases:
        result = run_boeflow(args, extra=case_env)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr, (args, result.stderr)


# --- Issue 13: a full page of documents, stemming, natural-language queries -------------


def _matching_documents(client: Elasticsearch, names: IndexNames, query: dict[str, object]) -> int:
    """Distinct documents whose chunks match ``query`` (independent of the search code)."""
    result = client.search(index=names.chunks, size=0, query=query,
                           aggs={"docs": {"cardinality": {"field": "doc_id"}}})
    return int(result["aggregations"]["docs"]["value"])


@pytest.mark.parametrize("mode", ["bm25", "knn", "hybrid"])
def test_size_n_returns_n_distinct_documents(searcher: Searcher, es_settings: Settings,
                                             mode: str) -> None:
    # "ley" matches the long Ley Concursal (~800 chunks) and most other documents: the
    # candidates of one long document used to fill the page (size 10 gave 1-2 documents).
    client = get_client(es_settings)
    names = names_for(es_settings)
    assert _matching_documents(client, names, {"match": {"text_folded": "ley"}}) > 10
    for size in (5, 10):
        results = searcher.search("ley", mode, size=size)  # type: ignore[arg-type]
        ids = [r.doc_id for r in results]
        assert len(ids) == size, (mode, size, ids)
        assert len(set(ids)) == size
        assert all(r.chunks and all(c.doc_id == r.doc_id for c in r.chunks) for r in results)
    # The long document whose chunks crowd the candidates is still listed once, with its
    # best chunks, when the query is about it.
    concursal = searcher.search("administración concursal acreedores", "bm25", size=10)
    assert concursal[0].doc_id == "BOE-A-2020-4859"
    assert len({r.doc_id for r in concursal}) == len(concursal) >= 3
    assert len(concursal[0].chunks) == 3


def test_size_is_capped_by_the_documents_that_match(searcher: Searcher) -> None:
    results = searcher.search("expropiación forzosa Magro", "bm25", size=10)
    assert 1 <= len(results) < 10
    assert results[0].doc_id == "BOE-B-2025-19396"


def test_cli_size_10_lists_10_documents(es_settings: Settings,
                                        indexed: dict[str, object]) -> None:
    env = {"BOEFLOW_PROFILE": "smoke",
           "BOEFLOW_SMOKE_MODELS_DIR": str(es_settings.smoke_models_dir),
           "BOEFLOW_ES_URL": es_settings.es_url, "BOEFLOW_ES_INDEX_PREFIX": PREFIX,
           "BOEFLOW_DATA_DIR": str(es_settings.data_dir)}
    for mode in ("bm25", "hybrid"):
        out = run_boeflow(["search", "ley", "--mode", mode, "--size", "10", "--json"], extra=env)
        assert out.returncode == 0, out.stderr
        ids = [r["doc_id"] for r in json.loads(out.stdout)["results"]]
        assert len(ids) == len(set(ids)) == 10, (mode, ids)


def test_stemming_meets_other_inflections_and_exact_words_still_win(
        searcher: Searcher, es_settings: Settings) -> None:
    client = get_client(es_settings)
    names = names_for(es_settings)
    # No chunk holds these words, only other forms ("embarazo", "campamento",
    # "desescombro"): exact and folded fields cannot match them, the stem field can.
    # ("campamentos" left this list when RDL 7/2024, which has the word, joined the samples.)
    for word, doc_id in (("embarazadas", "BOE-A-2024-23543"),
                         ("desescombrar", "BOE-B-2024-43583")):
        assert _matching_documents(client, names, {"match": {"text_folded": word}}) == 0
        results = searcher.search(word, "bm25", size=3)
        assert results and results[0].doc_id == doc_id, (word, [r.doc_id for r in results])
    # "contrataciones" / "contratos" meet "contratación" through the stem "contrat".
    assert _matching_documents(client, names,
                               {"match": {"text_folded": "contrataciones"}}) == 0
    assert searcher.search("contrataciones", "bm25", size=3)
    # A correction notice searched by its exact title ranks first, above the law it corrects
    # (whose title it contains) and the other DANA documents sharing most of its words.
    title = ("Corrección de errores del Real Decreto-ley 6/2024, de 5 de noviembre, por el que "
             "se adoptan medidas urgentes de respuesta ante los daños causados por la "
             "Depresión Aislada en Niveles Altos (DANA)")
    assert searcher.search(title, "bm25", size=3)[0].doc_id == "BOE-A-2024-24097"
    # An exact-form query prefers the chunk with the exact words over stem-only matches.
    top = searcher.search("artículo 14 igualdad ante la ley", "bm25", size=1)[0]
    assert top.chunks[0].heading.startswith("Artículo 14")


def test_natural_language_set_bm25_recall_at_5(searcher: Searcher) -> None:
    queries = load_set(shipped=NATURAL_QUERIES)
    assert len(queries) >= 30
    assert all("::" not in r for q in queries for r in q.relevant)
    report = evaluate(searcher, queries, ["bm25"])
    print("\nnatural-language retrieval:", json.dumps(report, indent=1))
    assert report["bm25"]["recall@5"] >= 0.9
    assert report["bm25"]["mrr@10"] >= 0.8


def test_cli_eval_reports_both_sets(es_settings: Settings, indexed: dict[str, object]) -> None:
    env = {"BOEFLOW_PROFILE": "smoke",
           "BOEFLOW_SMOKE_MODELS_DIR": str(es_settings.smoke_models_dir),
           "BOEFLOW_ES_URL": es_settings.es_url, "BOEFLOW_ES_INDEX_PREFIX": PREFIX,
           "BOEFLOW_DATA_DIR": str(es_settings.data_dir)}
    out = run_boeflow(["eval", "retrieval", "--mode", "bm25", "--json"], extra=env)
    assert out.returncode == 0, out.stderr
    sets = json.loads(out.stdout)["sets"]
    assert set(sets) == {"known_items", "natural_queries", "citations"}
    for name, data in sets.items():
        assert data["queries"] >= 30, name
        assert set(data["metrics"]["bm25"]) >= {"recall@5", "mrr@10"}


# --- Issue 22: citation-aware search ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_citation_set_puts_the_cited_norm_first(searcher: Searcher, mode: str) -> None:
    queries = load_set(shipped=CITATION_QUERIES)
    assert len(queries) >= 40
    report = evaluate(searcher, queries, [mode])  # type: ignore[list-item]
    print(f"\ncitation retrieval ({mode}):", json.dumps(report, indent=1))
    assert report[mode]["recall@1"] >= 0.95


def test_a_cited_norm_ranks_before_the_documents_that_cite_it(searcher: Searcher) -> None:
    for query in ("BOE-A-2024-22928", "RDL 6/2024", "Real Decreto-ley 6/2024",
                  "https://www.boe.es/eli/es/rdl/2024/11/05/6/con"):
        for mode in ("bm25", "hybrid", "knn"):
            results = searcher.search(query, mode, size=8)  # type: ignore[arg-type]
            ids = [r.doc_id for r in results]
            assert ids[0] == "BOE-A-2024-22928", (query, mode, ids)
            # then its correction, then what modifies it, then what cites it
            assert ids[1] == "BOE-A-2024-24097", (query, mode, ids)
            assert ids.index("BOE-A-2024-23422") < ids.index("BOE-A-2024-23620"), ids
            assert results[0].ranks["citation"] == 1
            assert results[0].chunks and results[0].chunks[0].text


def test_a_correction_query_puts_the_correction_first(searcher: Searcher) -> None:
    ids = [r.doc_id for r in searcher.search("corrección de errores del RDL 6/2024", "bm25")]
    assert ids[:2] == ["BOE-A-2024-24097", "BOE-A-2024-22928"], ids


def test_citation_search_keeps_filters(searcher: Searcher) -> None:
    results = searcher.search("RDL 6/2024", "bm25", Filters(since=date(2024, 11, 15)), size=10)
    ids = [r.doc_id for r in results]
    assert "BOE-A-2024-22928" not in ids  # published 2024-11-06
    assert ids[0] == "BOE-A-2024-24097", ids
    assert all((r.published or "") >= "2024-11-15" for r in results)


def test_an_unindexed_cited_law_brings_its_modifiers_first(searcher: Searcher) -> None:
    assert searcher.search("Ley 7/1985", "bm25")[0].doc_id == "BOE-A-2024-23422"
    assert searcher.search("LPAC", "hybrid")[0].doc_id == "BOE-A-2024-22928"
