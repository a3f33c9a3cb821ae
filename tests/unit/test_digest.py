"""The digest model and its templates on real recorded days: the 2024-11-06 and 2024-11-13
sumarios fetched from the replay server (the samples hold 1 and 2 of their items), with the
sample documents parsed by boeflow.parse as their boe-documents records."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.digest.build import (
    DayInputs,
    ReviewInput,
    apply_review,
    build_draft,
    summary_from,
    unknown_ids,
)
from boeflow.digest.mail import digest_mails
from boeflow.digest.model import SECTION_ORDER, WATERMARK, Digest, Summary
from boeflow.digest.render import render_html, render_json, render_markdown, review_body
from boeflow.digest.watchlists import (
    MAX_FILE_BYTES,
    MAX_KEYWORDS,
    MAX_LISTS,
    MAX_WATCH_QUERY_CHARS,
    QueryHit,
    Watchlist,
    WatchlistError,
    load_watchlists,
    query_hits,
    run_watchlists,
)
from boeflow.parse import parse_file
from boeflow.review import review_summary
from tests.conftest import DOCUMENTS, SAMPLES
from tests.support.cli import run_boeflow

REPO = Path(__file__).resolve().parents[2]
# A summary written by hand from BOE-A-2024-22928's text (a test fixture standing for an
# enrichment output; it is not model output).
SUMMARY_22928 = {
    "resumen": "El Real Decreto-ley 6/2024 adopta medidas urgentes de respuesta ante los daños "
               "causados por la DANA en diferentes municipios entre el 28 de octubre y el 4 de "
               "noviembre de 2024.",
    "puntos_clave": ["Ayudas a personas afectadas y a empresas.",
                     "Medidas laborales y de Seguridad Social."],
    "a_quien_afecta": "Personas, empresas y municipios afectados por la DANA.",
    "plazos_y_fechas": ["Daños entre el 28 de octubre y el 4 de noviembre de 2024."],
    "entrada_en_vigor": "El día de su publicación en el BOE.",
    "normas_afectadas": [],
}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DayManifest]:
    from boeflow.boe.store import load_manifest
    from boeflow.jobs.common import raw_store

    data = tmp_path_factory.mktemp("digest-data")
    settings = Settings(data_dir=data, samples_dir=SAMPLES)
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig

    manifests = {}
    with BoeServer(SAMPLES) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 1})
        store = raw_store(replay)
        for day in ("2024-11-06", "2024-11-13"):
            with BoeClient(ClientConfig.from_settings(replay)) as client:
                Fetcher(client, store, FetchOptions.from_settings(replay)).fetch_day(
                    date.fromisoformat(day))
            manifest = load_manifest(store, date.fromisoformat(day))
            assert manifest is not None
            manifests[day] = manifest
    return manifests


def _record(boe_id: str, **extra: Any) -> dict[str, Any]:
    doc = parse_file(DOCUMENTS / f"{boe_id}.xml")
    return {"doc_id": doc.id, "title": doc.title, "rango": doc.rango, "eli": doc.eli,
            "url_pdf": doc.url_pdf, "materias": doc.materias,
            "references": [r.model_dump() for r in doc.references], **extra}


def _day(fetched: dict[str, DayManifest], day: str, records: dict[str, dict[str, Any]]
         ) -> Digest:
    return build_draft(DayInputs(day=date.fromisoformat(day), manifest=fetched[day],
                                 records=records), smoke=False)


def _nov6(fetched: dict[str, DayManifest]) -> Digest:
    record = _record("BOE-A-2024-22928", summary=SUMMARY_22928,
                     summary_va="El Reial decret llei 6/2024 adopta mesures urgents de "
                                "resposta davant dels danys causats per la DANA.",
                     title_va="Reial decret llei 6/2024, de 5 de novembre, pel qual s'adopten "
                              "mesures urgents de resposta davant dels danys causats per la "
                              "DANA.",
                     review_status="needs_attention", needs_attention=True,
                     review_reasons=["fidelidad: cifra 6/2024 comprobada"],
                     linked_from=[{"source_id": "BOE-A-2024-24097", "relation": "corrige",
                                   "source_title": "Corrección de errores del Real "
                                                   "Decreto-ley 6/2024"}])
    return _day(fetched, "2024-11-06", {"BOE-A-2024-22928": record})


def test_sections_in_boe_order_with_departments_and_counts(
        fetched: dict[str, DayManifest]) -> None:
    digest = _nov6(fetched)
    order = [code for code, _ in SECTION_ORDER]
    codes = [s.code for s in digest.sections]
    assert codes == sorted(codes, key=order.index) == ["1", "2A", "2B", "3", "5A", "5B", "5C"]
    assert [s.label for s in digest.sections][:3] == ["I", "II-A", "II-B"]
    assert digest.header.items == 238 == sum(s.count for s in digest.sections)
    assert digest.header.boe_numbers == ["BOE-S-2024-268"]
    manifest = fetched["2024-11-06"]
    for section in digest.sections:
        expected: list[str] = []
        for item in manifest.items:
            if item.section == section.code and item.department not in expected:
                expected.append(item.department)
        assert [d.name for d in section.departments] == expected
    first = digest.sections[0].departments[0]
    assert first.name == "JEFATURA DEL ESTADO"
    assert [i.boe_id for i in first.items] == ["BOE-A-2024-22928"]


def test_items_without_summary_and_title_only_sections_are_compact(
        fetched: dict[str, DayManifest]) -> None:
    digest = _nov6(fetched)
    for section in digest.sections:
        for dept in section.departments:
            if section.code in ("2B", "5A", "5B", "5C"):
                assert dept.items == [] and dept.compact
            assert dept.count == len(dept.items) + len(dept.compact)
    v_a = next(s for s in digest.sections if s.code == "5A")
    assert v_a.count == 59
    markdown = render_markdown(digest)
    html = render_html(digest)
    dept = v_a.departments[0]
    summary = f"{dept.count} elemento{'s' if dept.count != 1 else ''} sin resumen"
    assert summary in markdown and summary in html
    assert html.count('<details class="compact">') >= len([d for s in digest.sections
                                                          for d in s.departments if d.compact])


def test_incidencias_list_the_items_the_replay_server_does_not_have(
        fetched: dict[str, DayManifest]) -> None:
    digest = _nov6(fetched)
    assert len(digest.incidencias) == 237
    assert all(n.stage == "fetch" and "404" in n.reason for n in digest.incidencias)
    assert "BOE-A-2024-22928" not in {n.boe_id for n in digest.incidencias}
    # The samples hold three documents of 13 Nov 2024 (BOE-A-2024-23622 since issue 20).
    nov13 = _day(fetched, "2024-11-13", {b: _record(b) for b in
                                          ("BOE-A-2024-23543", "BOE-A-2024-23620",
                                           "BOE-A-2024-23622")})
    assert nov13.header.items == 219 and len(nov13.incidencias) == 216
    # A stored item that is missing from Elasticsearch is an incidencia too (index stage).
    unindexed = _day(fetched, "2024-11-13", {"BOE-A-2024-23543": _record("BOE-A-2024-23543")})
    assert [(n.boe_id, n.stage) for n in unindexed.incidencias if n.stage != "fetch"] == [
        ("BOE-A-2024-23620", "index"), ("BOE-A-2024-23622", "index")]
    assert "Incidencias (237)" in render_markdown(digest)


def test_links_and_correction_links(fetched: dict[str, DayManifest]) -> None:
    item = next(i for i in _nov6(fetched).all_items() if i.boe_id == "BOE-A-2024-22928")
    assert item.url_pdf and item.url_pdf.startswith("https://www.boe.es/")
    assert item.url_html and item.url_xml
    assert item.eli == "https://www.boe.es/eli/es/rdl/2024/11/05/6"
    relations = {(link.relation, link.target_id) for link in item.links}
    assert ("corregido_por", "BOE-A-2024-24097") in relations
    assert ("modifica", "BOE-A-2015-10565") in relations
    assert item.links[0].relation == "corregido_por"  # corrections first
    link = next(link for link in item.links if link.target_id == "BOE-A-2024-24097")
    assert link.url == "https://www.boe.es/diario_boe/txt.php?id=BOE-A-2024-24097"
    html = render_html(_nov6(fetched))
    assert f'href="{link.url}"' in html and f'href="{item.eli}"' in html
    assert "Corregido por" in html


def test_valencian_fields_from_string_or_structure(fetched: dict[str, DayManifest]) -> None:
    digest = _nov6(fetched)
    item = next(i for i in digest.all_items() if i.boe_id == "BOE-A-2024-22928")
    assert item.title_va and item.title_va.startswith("Reial decret llei")
    assert item.summary_va == Summary(resumen="El Reial decret llei 6/2024 adopta mesures "
                                      "urgents de resposta davant dels danys causats per la "
                                      "DANA.")
    structured = summary_from({**SUMMARY_22928, "resumen": "Resum en valencià."})
    assert structured is not None and structured.puntos_clave == SUMMARY_22928["puntos_clave"]
    assert summary_from("") is None and summary_from(None) is None
    html = render_html(digest)
    assert 'lang="ca-valencia"' in html and "Reial decret llei 6/2024" in html
    assert "*va:* Reial decret llei" in render_markdown(digest)


def _checker(boe_id: str, language: str, summary: Summary) -> tuple[bool, list[str]]:
    doc = parse_file(DOCUMENTS / f"{boe_id}.xml")
    result = review_summary(fields={"resumen": summary.resumen,
                                    "puntos_clave": summary.puntos_clave},
                            raw_text=summary.resumen, status="ok", errors=[],
                            source_text=doc.text, resumen_max_chars=1200,
                            language="va" if language == "va" else "es")
    return (not result.needs_attention, result.reasons)


def test_review_excludes_edits_and_removes_the_watermark(
        fetched: dict[str, DayManifest]) -> None:
    draft = _nov6(fetched)
    assert draft.status == "draft" and draft.watermark == WATERMARK
    assert WATERMARK in render_markdown(draft) and WATERMARK in render_html(draft)
    corrected = ("El Real Decreto-ley 6/2024, de 5 de noviembre, adopta medidas urgentes ante "
                 "los daños de la DANA entre el 28 de octubre y el 4 de noviembre de 2024.")
    wrong = "El Real Decreto-ley 9/2031 concede 999 millones de euros desde el 1 de enero."
    review = ReviewInput(decision="approved", reviewer="revisora", excluded=["BOE-A-2024-22930"],
                         edits={"BOE-A-2024-22928": corrected, "BOE-A-2024-22928:va": wrong},
                         notes={"BOE-A-2024-22928": "comprobado"}, note="ok")
    assert unknown_ids(draft, review) == []
    assert unknown_ids(draft, ReviewInput(decision="approved", excluded=["BOE-A-1-1"])) == \
        ["BOE-A-1-1"]
    final = apply_review(draft, review, _checker)
    assert final.status == "published" and final.watermark is None
    ids = {i.boe_id for i in final.all_items()}
    assert "BOE-A-2024-22930" not in ids and len(ids) == 237
    assert [e.boe_id for e in final.excluded] == ["BOE-A-2024-22930"]
    item = next(i for i in final.all_items() if i.boe_id == "BOE-A-2024-22928")
    assert item.summary_es and item.summary_es.resumen == corrected
    es_edit, va_edit = item.review.edits
    assert es_edit.by == "revisora" and es_edit.checks_passed, es_edit.check_reasons
    # The automatic checks catch numbers that are not in the document.
    assert not va_edit.checks_passed and any("9/2031" in r or "999" in r
                                             for r in va_edit.check_reasons)
    assert item.review.note == "comprobado"
    assert final.header.items == 237 and final.header.excluded == 1
    markdown = render_markdown(final)
    html = render_html(final)
    assert WATERMARK not in markdown and "BORRADOR" not in html
    assert "Excluidos por el revisor (1)" in markdown
    assert "corregido por revisora" in markdown and "Resumen (es) corregido por" in html
    assert draft.draft_hash == _nov6(fetched).draft_hash  # stable across builds
    # The e-mail body: CSS inlined (mail clients drop <style>), no switch, no script.
    mail = next(iter(digest_mails(final, ["lectores@example.org"], [])))
    assert "<script" not in mail.html and 'type="radio"' not in mail.html
    assert "var(--" not in mail.html.split("<body", 1)[1]
    heading = re.search(r"<h2[^>]*>", mail.html)
    assert heading and 'style="' in heading.group(0)
    assert "Reial decret" in mail.html or 'lang="ca-valencia"' in mail.html


def test_json_follows_the_published_schema(fetched: dict[str, DayManifest]) -> None:
    schema = json.loads((REPO / "docs" / "digest.schema.json").read_text(encoding="utf-8"))
    assert schema == Digest.model_json_schema(), \
        "docs/digest.schema.json is stale: regenerate with `boeflow digest schema`"
    digest = _nov6(fetched)
    data = json.loads(render_json(digest))
    jsonschema.validate(data, schema)
    assert Digest.model_validate(data) == digest


def test_watchlists_match_keywords_departments_rangos(
        fetched: dict[str, DayManifest], tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[[watchlist]]\nname = "DANA"\nkeywords = ["dana"]\n\n'
                    '[[watchlist]]\nname = "Cultura"\ndepartments = ["Ministerio de Cultura"]\n'
                    'rangos = ["Real Decreto-ley"]\nrecipients = ["a@example.org"]\n',
                    encoding="utf-8")
    lists = load_watchlists(path)
    assert [w.name for w in lists] == ["DANA", "Cultura"]
    digest = _nov6(fetched)
    seen: list[tuple[str, date]] = []

    def query(text: str, day: date | None) -> list[QueryHit]:
        seen.append((text, day))  # a day without BOE-A-1999-1: it is dropped
        return [QueryHit("BOE-A-2024-22931", 3, 4), QueryHit("BOE-A-1999-1", 4, 4)]

    lists.append(Watchlist(name="Transporte", query="transporte público de viajeros"))
    results = run_watchlists(digest, lists, {}, query)
    dana = results[0]
    assert "BOE-A-2024-22928" in {m.boe_id for m in dana.matches}
    assert all("DANA" in m.title.upper() for m in dana.matches)
    cultura = results[1]
    assert cultura.recipients == 1 and len(cultura.matches) >= 2
    assert {m.boe_id for m in cultura.matches} >= {"BOE-A-2024-22932", "BOE-A-2024-22928"}
    assert [m.boe_id for m in results[2].matches] == ["BOE-A-2024-22931"]
    assert results[2].matches[0].why == ["búsqueda: 3 de 4 palabras"]
    assert seen == [("transporte público de viajeros", date(2024, 11, 6))]
    digest.watchlists = results
    assert "## Vigilancia" in render_markdown(digest)
    assert "DANA" in review_body(digest, "draft.html")


def test_no_publication_day_renders() -> None:
    manifest = DayManifest(date=date(2024, 11, 10), status="no_publication",
                           error="no BOE published on 2024-11-10")
    digest = build_draft(DayInputs(day=date(2024, 11, 10), manifest=manifest))
    assert digest.status == "no_publication" and digest.sections == []
    assert digest.incidencias[0].stage == "day"
    assert "No hay BOE publicado este día." in render_markdown(digest)
    assert "No hay BOE publicado" in render_html(digest)


# --- Watchlists that mean something, bounded (issue 17, findings 5 and 9) --------------------

def _watch_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchlists.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("toml", "expected"), [
    ('name = "Cultura"\ndepartments = [""]',
     'watchlist #1 «Cultura»: departments entry 1 («») is empty'),
    ('name = "Cultura"\ndepartments = ["Ministerio de Cultura", "  "]',
     'watchlist #1 «Cultura»: departments entry 2 («  ») is empty'),
    ('name = "DANA"\nkeywords = []', "watchlist #1 «DANA»: keywords is empty"),
    ('name = "DANA"\nkeywords = ["—"]', "keywords entry 1 («—») is empty or has no letters"),
    ('name = "DANA"\nquery = "   "', "watchlist #1 «DANA»: query is empty"),
    ('name = "DANA"\nrecipients = ["a@example.org"]', "watchlist #1 «DANA» has no criterion"),
    ('name = "DANA"\nquery = "' + "daños " * 100 + '"',
     f"watchlist #1 «DANA»: query is 599 characters long, at most {MAX_WATCH_QUERY_CHARS}"),
    ('name = "DANA"\nkeywords = [' + ", ".join(['"k"'] * (MAX_KEYWORDS + 1)) + "]",
     f"watchlist #1 «DANA»: keywords has {MAX_KEYWORDS + 1} entries, at most {MAX_KEYWORDS}"),
    ('name = "DANA"\nmaterias = ["' + "x" * 201 + '"]',
     "materias entry 1 is 201 characters long, at most 200"),
    ('name = "DANA"\nkeywords = ["dana"]\nrecipients = ["nadie"]',
     "recipient «nadie» is not an e-mail address"),
    ('name = "DANA"\nkeywords = ["dana"]\nquery_hits = 500',
     "watchlist #1 «DANA»: query_hits: Input should be less than or equal to 50"),
])
def test_empty_or_oversized_criteria_are_refused_at_load_naming_the_list(
        tmp_path: Path, toml: str, expected: str) -> None:
    path = _watch_file(tmp_path, "[[watchlist]]\n" + toml + "\n")
    with pytest.raises(WatchlistError) as raised:
        load_watchlists(path)
    message = str(raised.value)
    assert message.startswith(f"watchlist file {path}: ") and expected in message, message
    assert "\n" not in message and "\r" not in message


def test_a_watchlist_name_with_cr_lf_is_refused_on_one_line(tmp_path: Path) -> None:
    """Finding 9: a name with CR/LF split error lines (and went into mail channels)."""
    path = _watch_file(tmp_path, '[[watchlist]]\nname = "DANA\\r\\nFAILED: forged line"\n'
                                 'keywords = ["dana"]\n')
    with pytest.raises(WatchlistError) as raised:
        load_watchlists(path)
    message = str(raised.value)
    assert message == (f"watchlist file {path}: watchlist #1 «DANA\\r\\nFAILED: forged line»: "
                       "the name contains a control character (CR, LF, tab…); use one line "
                       "of text")
    assert len(message.splitlines()) == 1
    # Other invisible separators are refused the same way.
    path.write_text('[[watchlist]]\nname = "a\\u2028b"\nkeywords = ["x"]\n', encoding="utf-8")
    with pytest.raises(WatchlistError, match=r"«a\\u2028b»: the name contains a control"):
        load_watchlists(path)


@pytest.mark.timeout(30)
def test_the_findings_huge_watchlist_files_are_refused_without_running(tmp_path: Path) -> None:
    """Finding 5: 100k keywords ran > 300 s, 20k lists 103 s (and one mail each)."""
    keywords = ", ".join(f'"palabra{n}"' for n in range(100_000))
    path = _watch_file(tmp_path, f'[[watchlist]]\nname = "Todo"\nkeywords = [{keywords}]\n')
    with pytest.raises(WatchlistError, match=rf"is \d+ bytes, at most {MAX_FILE_BYTES} "):
        load_watchlists(path)
    lists = "".join(f'[[watchlist]]\nname = "L{n}"\nkeywords = ["k"]\n' for n in range(20_000))
    path = _watch_file(tmp_path, lists)
    assert path.stat().st_size < MAX_FILE_BYTES  # refused for its count, not its size
    with pytest.raises(WatchlistError, match=rf": 20000 watchlists, at most {MAX_LISTS}$"):
        load_watchlists(path)


def test_a_file_at_the_limits_loads_and_runs(fetched: dict[str, DayManifest],
                                             tmp_path: Path) -> None:
    words = [f"palabra{n}" for n in range(MAX_KEYWORDS - 1)] + ["dana"]
    keywords = ", ".join(f'"{w}"' for w in words)
    path = _watch_file(tmp_path, "".join(
        f'[[watchlist]]\nname = "L{n}"\nkeywords = [{keywords}]\n' for n in range(MAX_LISTS)))
    lists = load_watchlists(path)
    assert len(lists) == MAX_LISTS
    results = run_watchlists(_nov6(fetched), lists, {}, None)
    assert all("BOE-A-2024-22928" in {m.boe_id for m in r.matches} for r in results)
    assert all(r.matches[0].why == ["palabra «dana»"] for r in results)


def test_one_failing_query_names_its_watchlist(fetched: dict[str, DayManifest]) -> None:
    from boeflow.index.search import SearchInputError

    def query(text: str, day: date | None) -> list[QueryHit]:
        raise SearchInputError("query too long (2500 characters, at most 2000)")

    lists = [Watchlist(name="DANA", keywords=["dana"]),
             Watchlist(name="Transporte\u00a0urbano", query="transporte")]
    with pytest.raises(WatchlistError) as raised:
        run_watchlists(_nov6(fetched), lists, {}, query)
    assert str(raised.value) == ("watchlist «Transporte\u00a0urbano»: its query failed: query "
                                 "too long (2500 characters, at most 2000)")


def test_a_query_match_needs_coverage_or_similarity_with_bm25_agreement() -> None:
    words = {"ayud", "dan", "danos"}
    lexical = [("A", {"ayud", "dan"}), ("B", {"ayud"}), ("C", set())]
    # BM25 only (smoke embedder): 2 of 3 words (0.67 >= 0.6) matches, 1 of 3 does not.
    assert [(h.boe_id, h.reason()) for h in query_hits(words, lexical, [], None)] == [
        ("A", "búsqueda: 2 de 3 palabras")]
    # A real embedder: kNN neighbours count above the floor, and only where BM25 agrees.
    semantic = [("D", 0.95), ("B", 0.81), ("C", 0.9), ("A", 0.3)]
    hits = query_hits(words, lexical, semantic, 0.6)
    assert [h.boe_id for h in hits] == ["A", "B"]  # D: no BM25 agreement; C: no word
    assert hits[1].reason() == "búsqueda semántica: similitud 0.81, 1 de 3 palabras"
    assert [h.boe_id for h in query_hits(words, lexical, [("B", 0.55)], 0.6)] == ["A"]
    assert query_hits(set(), lexical, semantic, 0.6) == []  # only stopwords


@pytest.mark.parametrize(("second", "expected"), [
    ('name = "Transporte"\nquery = "' + "transporte público " * 130 + '"',
     "watchlist #2 «Transporte»: query is 2469 characters long, at most 500"),
    ('name = "Vigilancia\\r\\nerror: forged"\nkeywords = ["x"]',
     "watchlist #2 «Vigilancia\\r\\nerror: forged»: the name contains a control character "
     "(CR, LF, tab…); use one line of text"),
])
def test_digest_build_names_the_watchlist_on_one_line(tmp_path: Path, second: str,
                                                      expected: str) -> None:
    """Finding 5: one query over the length limit failed the whole build with the search's
    "query too long" and no watchlist named; finding 9: a CR/LF name split the lines."""
    path = _watch_file(tmp_path, '[[watchlist]]\nname = "DANA"\nkeywords = ["DANA"]\n\n'
                                 f"[[watchlist]]\n{second}\n")
    done = run_boeflow(["digest", "build", "--date", "2024-11-06"], script=True, timeout=120,
                       extra={"BOEFLOW_DIGEST_WATCHLISTS_FILE": str(path),
                              "BOEFLOW_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [f"error: watchlist file {path}: {expected}"], \
        done.stderr
