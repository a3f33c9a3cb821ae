"""The citation grammar and table shared by links, watchlists and search (issue 22)."""

from __future__ import annotations

from datetime import date

import pytest

from boeflow.boe.citations import (
    BY_ACRONYM,
    NORMS,
    find_citations,
    normalise_eli,
    resolve_law,
    strip_citations,
)
from boeflow.evals.retrieval import CITATION_QUERIES, load_set


@pytest.mark.parametrize(("text", "rango", "number"), [
    ("RDL 6/2024", "Real Decreto-ley", "6/2024"),
    ("Real Decreto-ley 8/2024, de 28 de noviembre", "Real Decreto-ley", "8/2024"),
    ("RD-ley 7/2024", "Real Decreto-ley", "7/2024"),
    ("real decreto 887/2006", "Real Decreto", "887/2006"),
    ("RD 1160/2024", "Real Decreto", "1160/2024"),
    ("RDLeg 1/2020", "Real Decreto Legislativo", "1/2020"),
    ("Real Decreto Legislativo 2/2004", "Real Decreto Legislativo", "2/2004"),
    ("LO 3/2018", "Ley Orgánica", "3/2018"),
    ("Ley Orgánica 3/2018", "Ley Orgánica", "3/2018"),
    ("L 39/2015", "Ley", "39/2015"),
    ("la Ley 7/1985, de 2 de abril", "Ley", "7/1985"),
    ("Orden ITU/658/2025", "Orden", "ITU/658/2025"),
    ("orden int/1265/2024", "Orden", "INT/1265/2024"),
])
def test_norm_citations(text: str, rango: str, number: str) -> None:
    [citation] = find_citations(text)
    assert (citation.rango, citation.number) == (rango, number)


def test_ids_elis_acronyms_and_resolutions() -> None:
    [boe_id] = find_citations("ver boe-a-2024-22928 ahora")
    assert boe_id.kind == "boe_id" and boe_id.boe_id == "BOE-A-2024-22928"
    [eli] = find_citations("https://www.boe.es/eli/es/rdl/2024/11/05/6/con")
    assert eli.eli == "https://www.boe.es/eli/es/rdl/2024/11/05/6"
    assert (eli.rango, eli.number, eli.day) == ("Real Decreto-ley", "6/2024", date(2024, 11, 5))
    corrigendum = "https://www.boe.es/eli/es/rdl/2024/11/05/6/corrigendum/20241120/dof/spa"
    assert normalise_eli(corrigendum) == ("https://www.boe.es/eli/es/rdl/2024/11/05/6/"
                                          "corrigendum/20241120")
    assert find_citations(corrigendum)[0].number is None  # names the correction, not the RDL
    [acronym] = find_citations("plazos de la LPAC para recurrir")
    assert acronym.boe_id == "BOE-A-2015-10565"
    assert find_citations("los plazos de la lpac") == []  # acronyms are case-sensitive
    [res] = find_citations("Resolución de 12 de noviembre de 2024, de la Mutualidad General "
                           "de Funcionarios Civiles del Estado, por la que se garantiza")
    assert res.day == date(2024, 11, 12)
    assert res.organ == "Mutualidad General de Funcionarios Civiles del Estado"


def test_corrections_and_free_text() -> None:
    [cited] = find_citations("corrección de errores del RDL 8/2024")
    assert cited.correction
    [cited] = find_citations("corregidos los errores del decreto ley 6/2024")
    assert cited.correction and cited.rango == "Decreto-ley"
    assert not find_citations("ayudas del RDL 6/2024")[0].correction
    query = "ayudas a vehículos del RDL 6/2024 en Valencia"
    assert strip_citations(query, find_citations(query)) == "ayudas a vehículos del en Valencia"
    # A number alone, a date or a page is not a citation.
    assert find_citations("el 6/2024 de la página 39/2015") == []


def test_watchlist_entries_resolve_to_one_law() -> None:
    assert resolve_law("Ley 39/2015") == "BOE-A-2015-10565"
    assert resolve_law("LCSP") == "BOE-A-2017-12902"
    assert resolve_law("Real Decreto 887/2006") == "BOE-A-2006-13371"
    assert resolve_law("BOE-A-1985-5392") == "BOE-A-1985-5392"
    assert resolve_law("Ley 99/2099") is None
    assert resolve_law("ayudas") is None


def test_the_table_is_consistent() -> None:
    ids = [norm.boe_id for norm in NORMS]
    assert len(ids) == len(set(ids))
    for acronym in ("LPAC", "LRJSP", "LCSP", "LGT", "ET", "LEC", "LBRL"):
        assert acronym in BY_ACRONYM
    for norm in NORMS:
        if norm.number:
            assert resolve_law(f"{norm.rango} {norm.number}") == norm.boe_id


def test_the_shipped_citation_set_is_citations() -> None:
    queries = load_set(shipped=CITATION_QUERIES)
    assert len(queries) >= 40
    assert all(find_citations(q.query) for q in queries), [
        q.query for q in queries if not find_citations(q.query)]
