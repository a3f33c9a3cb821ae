"""XML parsing on the real BOE samples: structure, tables, images, forms, metadata."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from boeflow.parse import ParseError, parse_bytes, parse_file
from tests.unit.boe_text import (
    DOCUMENTS,
    SAMPLE_XMLS,
    articulo_headings,
    in_order_coverage,
    texto_of,
    texto_words,
)

CONSTITUCION = DOCUMENTS / "BOE-A-1978-31229.xml"
SINGULAR_DISPOSICION = re.compile(r"^DISPOSICI[OÓ]N (ADICIONAL|TRANSITORIA|DEROGATORIA|FINAL)")


@pytest.mark.parametrize("path", SAMPLE_XMLS, ids=lambda p: p.stem)
def test_each_articulo_paragraph_starts_exactly_one_provision_unit(path: Path) -> None:
    doc = parse_file(path)
    expected = articulo_headings(path)
    provisions = [u for u in doc.units if u.kind in ("articulo", "disposicion")]
    # Disposiciones introduced by other markup, e.g. <p class="capitulo">DISPOSICIÓN FINAL.
    other = [p for p in texto_of(path).iter("p") if p.get("class") in ("capitulo", "titulo")
             and SINGULAR_DISPOSICION.match(re.sub(r"\[\w+\]", "", "".join(p.itertext())))]
    assert len(provisions) == len(expected) + len(other)
    remaining = iter(u.heading for u in provisions)
    for heading in expected:  # in order, each one exactly once
        assert heading in remaining, heading
    for unit in provisions:
        assert unit.text.startswith(unit.heading.split(" ")[0])
        assert "[precepto]" not in unit.text and not unit.heading.startswith("«")


@pytest.mark.parametrize("path", SAMPLE_XMLS, ids=lambda p: p.stem)
def test_units_cover_the_whole_texto_in_order(path: Path) -> None:
    doc = parse_file(path)
    assert doc.units, "no units"
    position = 0
    for unit in doc.units:
        assert unit.start >= position and doc.text[unit.start:unit.end] == unit.text
        position = unit.end
    assert in_order_coverage(texto_words(path), doc.text) >= 0.995


def test_constitucion_structure() -> None:
    doc = parse_file(CONSTITUCION)
    kinds = [u.kind for u in doc.units]
    assert kinds.count("articulo") == 169
    disposiciones = [u.disposicion for u in doc.units if u.kind == "disposicion"]
    assert len(disposiciones) == 15
    assert {k: disposiciones.count(k) for k in set(disposiciones)} == {
        "adicional": 4, "transitoria": 9, "derogatoria": 1, "final": 1}
    by_heading = {u.heading: u for u in doc.units if u.kind == "articulo"}
    assert by_heading["Artículo 14"].path == [
        "TÍTULO I. De los derechos y deberes fundamentales",
        "CAPÍTULO SEGUNDO. Derechos y libertades"]
    assert by_heading["Artículo 15"].path[-1] == (
        "SECCIÓN 1.ª De los derechos fundamentales y de las libertades públicas")
    assert by_heading["Artículo 149"].path == [
        "TÍTULO VIII. De la Organización Territorial del Estado",
        "CAPÍTULO TERCERO. De las Comunidades Autónomas"]
    assert by_heading["Artículo 1"].path == ["TÍTULO PRELIMINAR"]
    assert by_heading["Artículo 149"].text.startswith(
        "Artículo 149\n\n1. El Estado tiene competencia exclusiva")
    transitoria = [u for u in doc.units if u.disposicion == "transitoria"]
    assert transitoria[0].heading == "Primera." and transitoria[0].path == [
        "DISPOSICIONES TRANSITORIAS"]
    assert doc.units[0].kind == "preambulo" and doc.units[-1].kind == "firma"


def test_metadata_of_a_real_decreto_ley() -> None:
    doc = parse_file(DOCUMENTS / "BOE-A-2024-22928.xml")
    assert doc.id == "BOE-A-2024-22928" and doc.source_format == "xml"
    assert doc.title.startswith("Real Decreto-ley 6/2024, de 5 de noviembre")
    assert (doc.rango, doc.official_number, doc.section) == ("Real Decreto-ley", "6/2024", "1")
    assert doc.department == "Jefatura del Estado"
    assert doc.published == date(2024, 11, 6)
    assert doc.url_pdf == "https://www.boe.es/boe/dias/2024/11/06/pdfs/BOE-A-2024-22928.pdf"
    assert doc.eli is not None and doc.eli.startswith("https://www.boe.es/eli/es/rdl/2024/11/05/6")
    assert "Inundaciones" in doc.materias
    assert any(r.direction == "posterior" for r in doc.references)
    # The hierarchy: Capítulo V › Sección 2.ª › Artículo 31.
    art31 = next(u for u in doc.units if u.heading.startswith("Artículo 31."))
    assert [p.split(".")[0] for p in art31.path] == ["CAPÍTULO V", "Sección 2"]
    # Disposiciones sit outside the capítulos.
    first_da = next(u for u in doc.units if u.kind == "disposicion")
    assert first_da.path == [] and first_da.disposicion == "adicional"


def test_table_becomes_a_markdown_grid_with_its_header() -> None:
    doc = parse_file(DOCUMENTS / "BOE-A-2020-4866.xml")
    table = next(u for u in doc.units if u.kind == "tabla")
    assert table.path == ["ANEXO. Límites máximos presupuestarios del régimen de pequeños "
                          "agricultores para la campaña 2019"]
    lines = table.text.split("\n")
    assert lines[0] == "| Línea de ayuda | Línea de ayuda | Límite presupuestario (euros) |"
    assert re.fullmatch(r"\|(---\|){3}", lines[1])
    assert "| Régimen de pago básico. | Régimen de pago básico. | 51.244.305 |" in lines
    # rowspan: the spanning cell is repeated so every row stands alone
    assert sum(line.startswith("| Ayuda asociada voluntaria. |") for line in lines) == 18
    # a table inside an article stays inside that article
    dana = parse_file(DOCUMENTS / "BOE-A-2024-22928.xml")
    art11 = next(u for u in dana.units if u.heading.startswith("Artículo 11."))
    assert "\n| ≤ 1M | 10.000 |\n" in art11.text and "|---|" in art11.text


def test_captioned_tables_in_an_annex() -> None:
    doc = parse_file(DOCUMENTS / "BOE-A-2025-13788.xml")
    tables = [u for u in doc.units if u.kind == "tabla"]
    assert [t.heading for t in tables][:2] == ["Zona A-1", "Zona A-2"]
    assert all(t.path == ["ANEXO I. Listado de vehículos. ZAL Puerto de Valencia"]
               for t in tables)
    assert all(t.text.split("\n")[0] == t.heading for t in tables)


def test_images_become_placeholders_with_their_source() -> None:
    doc = parse_file(DOCUMENTS / "BOE-A-2024-23620.xml")
    annex = next(u for u in doc.units if u.heading == "ANEXO I. Formulario único")
    assert annex.kind == "anexo"
    assert ("[Imagen: https://www.boe.es/datos/imagenes/disp/2024/274/23620_15008789_1.png]"
            in annex.text)
    assert doc.text.count("[Imagen: ") == 8


def test_amending_blockquote_stays_in_its_disposicion() -> None:
    doc = parse_file(DOCUMENTS / "BOE-A-2025-9743.xml")
    da1 = next(u for u in doc.units if u.heading.startswith("Disposición adicional primera"))
    assert "«Artículo 3. Competencias reservadas al conseller o consellera." in da1.text
    assert "13. Aprobar mediante la resolución las cartografías oficiales" in da1.text
    assert not any(u.heading.startswith(("«", "Artículo 194")) for u in doc.units)


def test_contract_notice_form_keeps_terms_with_values() -> None:
    doc = parse_file(DOCUMENTS / "BOE-B-2024-43583.xml")
    assert "1. Poder adjudicador:\n  1.1) Nombre: INSS-Dirección provincial de Valencia." in (
        doc.text)
    assert "    7.2.1) Situación de extrema urgencia." in doc.text
    assert doc.units[-1].text.startswith("Valencia, 25 de noviembre de 2024")


def test_external_entities_are_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    real = (DOCUMENTS / "BOE-A-2024-25801.xml").read_bytes()
    declaration, rest = real.split(b"\n", 1)
    doctype = f'<!DOCTYPE documento [<!ENTITY ext SYSTEM "file://{secret}">]>'.encode()
    hostile = declaration + b"\n" + doctype + b"\n" + rest.replace(
        b'<p class="parrafo">', b'<p class="parrafo">&ext;', 1)
    try:
        doc = parse_bytes(hostile, "hostile.xml")
    except ParseError:
        return  # refusing the document is as safe as ignoring the entity
    assert "TOP-SECRET-CONTENT" not in doc.text
