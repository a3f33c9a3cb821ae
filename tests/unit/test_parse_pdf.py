"""PDF parsing with PyMuPDF against the XML of the same documents."""

from __future__ import annotations

import difflib
from datetime import date
from pathlib import Path

import pymupdf
import pytest

from boeflow.parse import parse_bytes, parse_file
from boeflow.parse.pdf import _join_lines
from tests.unit.boe_text import DOCUMENTS, PDFS, normalise

BOTH = sorted(p.stem for p in PDFS.glob("BOE-[AB]-*.pdf") if (DOCUMENTS / f"{p.stem}.xml").exists())


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalise(a).split(), normalise(b).split(),
                                   autojunk=False).ratio()


def test_the_four_documents_in_both_formats_are_here() -> None:
    assert BOTH == ["BOE-A-2024-23620", "BOE-A-2024-24097", "BOE-A-2024-26250",
                    "BOE-B-2024-43583"]


@pytest.mark.parametrize("stem", BOTH)
def test_pdf_text_matches_the_xml_text(stem: str) -> None:
    pdf = parse_file(PDFS / f"{stem}.pdf")
    xml = parse_file(DOCUMENTS / f"{stem}.xml")
    assert pdf.id == stem and pdf.source_format == "pdf"
    score = similarity(pdf.text, xml.text)
    print(f"PDF/XML similarity {stem}: {score:.4f}")
    assert score >= 0.95
    for furniture in ("BOLETÍN OFICIAL DEL ESTADO", "cve: BOE", "Verificable en", "Pág. ",
                      "ISSN"):
        assert furniture not in pdf.text
    # the same metadata as the XML where the PDF states it
    assert pdf.published == xml.published and pdf.section == xml.section
    assert pdf.url_pdf == xml.url_pdf
    assert pdf.title == xml.title


def test_pdf_structure_matches_the_xml_structure() -> None:
    stem = "BOE-A-2024-23620"
    pdf = parse_file(PDFS / f"{stem}.pdf")
    xml = parse_file(DOCUMENTS / f"{stem}.xml")

    def outline(units: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
        return [(u.kind, u.heading) for u in units if u.kind != "tabla"]

    assert outline(pdf.units) == outline(xml.units)
    assert pdf.rango == "Orden" and pdf.official_number == "INT/1265/2024"
    assert pdf.department == "MINISTERIO DEL INTERIOR"
    assert pdf.published == date(2024, 11, 13)


def test_hyphenated_line_breaks_are_joined() -> None:
    assert _join_lines("la infor-\nmación pública\n") == "la información pública"
    assert _join_lines("Real Decreto-\nLey") == "Real Decreto- Ley"  # capital: not a hyphenation


def test_two_column_page_is_read_column_by_column(tmp_path: Path) -> None:
    """A two-column page built from the real paragraphs of a BOE PDF."""
    source = parse_file(PDFS / "BOE-A-2024-23620.pdf")
    paragraphs = next(u.text for u in source.units if u.kind == "preambulo").split("\n\n")[:4]
    out = pymupdf.open()
    page = out.new_page(width=595, height=842)
    boxes = [pymupdf.Rect(60, 120, 290, 420), pymupdf.Rect(60, 430, 290, 760),
             pymupdf.Rect(305, 120, 535, 420), pymupdf.Rect(305, 430, 535, 760)]
    for rect, text in zip(boxes, paragraphs, strict=True):
        assert page.insert_textbox(rect, text, fontsize=7) >= 0
    out.set_metadata({"subject": "BOE-A-2024-23620"})
    data = out.tobytes()
    doc = parse_bytes(data, "two-columns.pdf")
    starts = [doc.text.find(p[:40]) for p in paragraphs]
    assert all(s >= 0 for s in starts) and starts == sorted(starts)
