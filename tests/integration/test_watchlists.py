"""Watchlist queries on the real Elasticsearch, with every sample document indexed by the
production code (smoke embedder): a query criterion matches only what holds its words (issue
17, finding 5: random words matched both items of a day and mailed a recipient), and the
documented floor is the one the calibration picks on the shipped labelled sets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from boeflow.core.settings import Settings
from boeflow.digest.calibrate import NONSENSE, calibrate
from boeflow.digest.collect import hybrid_query, query_evidence
from boeflow.digest.watchlists import MIN_COVERAGE, QueryHit
from boeflow.evals.retrieval import KNOWN_ITEMS, NATURAL_QUERIES, load_set
from boeflow.index.client import drop_indices, get_client, names_for
from boeflow.index.files import index_files
from boeflow.index.mapping import IndexNames
from tests.conftest import SEARCH_CORPUS

pytestmark = pytest.mark.integration
PREFIX = "it-watch-"


def _drop(client: Elasticsearch) -> None:
    drop_indices(client, IndexNames(PREFIX))
    for alias in IndexNames(PREFIX).all():
        client.options(ignore_status=404).indices.delete_index_template(
            name=f"{alias}-template")


@pytest.fixture(scope="module")
def settings(live_settings: Settings, smoke_models_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(profile="smoke", smoke_models_dir=smoke_models_dir,
                        es_url=live_settings.es_url, es_index_prefix=PREFIX,
                        data_dir=tmp_path_factory.mktemp("watch-data"))
    client = get_client(settings)
    _drop(client)
    report = index_files(list(SEARCH_CORPUS), settings)
    assert report.failed == {} and report.documents == len(SEARCH_CORPUS) == 22
    yield settings
    _drop(client)


def _run(settings: Settings, query: str, day: date) -> list[QueryHit]:
    with get_client(settings) as client:
        return hybrid_query(settings, client, names_for(settings))(query, day)


@pytest.mark.parametrize("day", [date(2024, 11, 13), date(2020, 5, 7), date(2024, 11, 6)])
def test_random_words_match_nothing(settings: Settings, day: date) -> None:
    """Before: the kNN half of the hybrid search always returns the day's nearest items, so
    every query criterion matched (with no score at all)."""
    for query in NONSENSE:
        assert _run(settings, query, day) == [], query


def test_a_query_matches_the_items_that_hold_its_words(settings: Settings) -> None:
    # The Ley Concursal and a court's edicto declaring a debtor's concurso (both hold the
    # three words); not the day's three other items.
    hits = _run(settings, "concurso de acreedores del deudor", date(2020, 5, 7))
    assert sorted(h.boe_id for h in hits) == ["BOE-A-2020-4859", "BOE-B-2020-13284"]
    assert {h.reason() for h in hits} == {"búsqueda: 3 de 3 palabras"}
    dana = _run(settings, "ayudas por los daños de la DANA", date(2024, 11, 6))
    assert [h.boe_id for h in dana] == ["BOE-A-2024-22928"]
    # Stopwords are not words of the query: "de la por los" has nothing to agree on.
    assert _run(settings, "de la por los", date(2024, 11, 6)) == []


def test_a_smoke_embedder_means_bm25_only(settings: Settings) -> None:
    with get_client(settings) as client:
        words, lexical, nearest = query_evidence(settings, client, names_for(settings))(
            "ayudas por los daños de la DANA", date(2024, 11, 6))
    assert words == {"ayud", "dan"} and [d for d, _ in lexical] == ["BOE-A-2024-22928"]
    assert nearest == []  # no kNN neighbour from random weights ("daños", "DANA": one stem)


def test_the_documented_floor_is_the_calibrated_one(settings: Settings) -> None:
    labelled = [*load_set(shipped=NATURAL_QUERIES), *load_set(shipped=KNOWN_ITEMS)]
    with get_client(settings) as client:
        coverage, similarity = calibrate(query_evidence(settings, client, names_for(settings)),
                                         labelled)
    print(coverage.table())
    assert similarity is None  # smoke embedder: nothing to calibrate for kNN
    assert coverage.chosen is not None and coverage.chosen.floor == MIN_COVERAGE
    assert coverage.chosen.recall >= 0.9 and coverage.chosen.nonsense == 0
    assert len(coverage.relevant) == 89 and len(coverage.nonsense) >= 1
    # the floor just below lets a nonsense pair through or keeps no more relevant pairs
    rows = {round(r.floor, 2): r for r in coverage.rows}
    assert rows[0.3].nonsense > 0
