"""HTML parsing with BeautifulSoup.

There is no recorded BOE HTML page in the samples. The item page
(``diario_boe/txt.php?id=…``) wraps the same ``<texto>`` markup as the XML in
``<div id="textoxslt">`` next to a metadata ``<dl>``; so the test input is built from the
real XML: its ``<texto>`` children verbatim, and its metadata in that page layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.parse import parse_bytes, parse_file
from tests.unit.boe_text import DOCUMENTS


def html_page_from_xml(path: Path) -> bytes:
    root = parse_xml_bytes(path.read_bytes())
    meta = root.find("metadatos")
    assert meta is not None

    def field(name: str) -> str:
        return "".join(meta.findtext(name) or "")

    texto = root.find("texto")
    assert texto is not None
    body = "".join(etree.tostring(child, encoding="unicode") for child in texto)
    published = field("fecha_publicacion")
    months = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre"]
    human_date = f"{int(published[6:])} de {months[int(published[4:6]) - 1]} de {published[:4]}"
    eli = field("url_eli")
    page = f"""<!DOCTYPE html>
<html lang="es"><head><meta charset="utf-8"><title>BOE.es - {field('identificador')}</title></head>
<body><div id="contenido">
<h3 class="documento-tit">{field('titulo')}</h3>
<div class="metadatos"><dl>
<dt>Publicado en:</dt><dd>«BOE» núm. {field('diario_numero')}, de {human_date}</dd>
<dt>Departamento:</dt><dd>{field('departamento')}</dd>
<dt>Referencia:</dt><dd>{field('identificador')}</dd>
{f'<dt>Permalink ELI:</dt><dd><a href="{eli}">{eli}</a></dd>' if eli else ''}
</dl></div>
<ul><li class="puntoPDF"><a href="{field('url_pdf')}">PDF</a></li></ul>
<div id="textoxslt">{body}</div>
</div></body></html>"""
    return page.encode("utf-8")


@pytest.mark.parametrize("stem", ["BOE-A-1978-31229", "BOE-A-2024-22928", "BOE-A-2025-9743",
                                  "BOE-A-2024-23620", "BOE-B-2024-43583", "BOE-A-2020-4866"])
def test_html_gives_the_same_structure_and_text_as_xml(stem: str) -> None:
    path = DOCUMENTS / f"{stem}.xml"
    xml = parse_file(path)
    html = parse_bytes(html_page_from_xml(path), f"{stem}.html")
    assert html.source_format == "html" and html.id == xml.id
    assert html.title == xml.title and html.department == xml.department
    assert html.published == xml.published and html.url_pdf == xml.url_pdf
    if xml.eli:  # the page links the ELI of <url_eli>, the XML's RDF may add a suffix
        assert html.eli is not None and xml.eli.startswith(html.eli)
    assert [(u.kind, u.heading, u.path) for u in html.units] == [
        (u.kind, u.heading, u.path) for u in xml.units]
    assert html.text == xml.text


def test_html_without_document_text_is_an_error() -> None:
    from boeflow.parse import ParseError

    page = html_page_from_xml(DOCUMENTS / "BOE-A-2024-25801.xml").replace(
        b'id="textoxslt"', b'id="otra-cosa"')
    with pytest.raises(ParseError, match=r"^BOE-A-2024-25801: .*textoxslt"):
        parse_bytes(page, "page.html")
