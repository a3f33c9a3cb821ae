"""Search logic that needs no cluster: RRF against a hand computation, filters, folding."""

from __future__ import annotations

from datetime import date

import pytest

from boeflow.core.textnorm import fold
from boeflow.index.mapping import ANALYSIS, chunks_mapping, templates
from boeflow.index.search import Filters, SearchInputError, _check_query, bm25_query, rrf_fuse


def test_rrf_matches_a_hand_computation() -> None:
    bm25 = ["a", "b", "c"]
    knn = ["c", "a", "d"]
    fused = dict(rrf_fuse({"bm25": bm25, "knn": knn}, k=60))
    # a: 1/61 + 1/62; b: 1/62; c: 1/63 + 1/61; d: 1/63
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    order = [item for item, _ in rrf_fuse({"bm25": bm25, "knn": knn})]
    assert order == ["a", "c", "b", "d"]
    # The union of both lists, nothing else.
    assert set(order) == set(bm25) | set(knn)


def test_fold_removes_accents_identically_for_index_and_query() -> None:
    assert fold("Artículo 14. Disposición adicional única") == (
        "articulo 14. disposicion adicional unica")
    assert fold("ESPAÑA, pingüino, Generalitat, l'Horta") == (
        "espana, pinguino, generalitat, l'horta")
    assert fold(fold("Constitución")) == fold("Constitución")


def test_filters_reject_unknown_sections_and_inverted_ranges() -> None:
    with pytest.raises(SearchInputError, match="unknown section 9"):
        Filters(sections=("9",)).validate()
    with pytest.raises(SearchInputError, match="after"):
        Filters(since=date(2025, 1, 2), until=date(2025, 1, 1)).validate()
    clauses = Filters(since=date(2024, 11, 6), sections=("1", "3"), rango="Ley").clauses()
    assert {"range": {"published": {"gte": "2024-11-06"}}} in clauses
    assert {"terms": {"section": ["1", "3"]}} in clauses
    assert {"term": {"rango": "Ley"}} in clauses


def test_bad_queries_give_clear_messages() -> None:
    with pytest.raises(SearchInputError, match="empty query"):
        _check_query("   \n ")
    with pytest.raises(SearchInputError, match="query too long"):
        _check_query("plazo " * 2000)


def test_bm25_query_searches_the_folded_fields_with_a_folded_query() -> None:
    query = bm25_query("artículo igualdad", Filters())
    folded = query["bool"]["should"][1]["multi_match"]
    assert folded["query"] == "articulo igualdad"
    assert all(f.split("^")[0].endswith("_folded") for f in folded["fields"])


def test_mapping_uses_only_server_core_analysis_and_model_dims() -> None:
    assert ANALYSIS["analyzer"]["boe_spanish"]["tokenizer"] == "standard"
    used_filters = ANALYSIS["analyzer"]["boe_spanish"]["filter"]
    assert used_filters == ["lowercase", "boe_spanish_stop"]
    assert ANALYSIS["filter"]["boe_spanish_stop"]["type"] == "stop"
    vector = chunks_mapping(384)["properties"]["vector"]
    assert vector["dims"] == 384
    assert vector["index_options"]["type"] == "int8_hnsw"
    assert vector["similarity"] == "cosine"
    assert set(templates(384)) == {"boe-documents-template", "boe-chunks-template",
                                   "boe-digests-template"}


def test_known_item_heading_match_is_exact_on_numbers() -> None:
    from boeflow.evals.retrieval import matches
    from boeflow.index.search import ChunkHit

    def hit(heading: str) -> ChunkHit:
        return ChunkHit("c", "BOE-A-1978-31229", [], heading, "", 0.0)

    assert matches("BOE-A-1978-31229::Artículo 14", hit("Artículo 14"))
    assert matches("BOE-A-1978-31229::Artículo 14", hit("Artículo 14. Igualdad"))
    assert not matches("BOE-A-1978-31229::Artículo 1", hit("Artículo 14"))
    assert not matches("BOE-A-2020-4859::Artículo 14", hit("Artículo 14"))
    assert matches("BOE-A-1978-31229", hit("Disposición final"))
