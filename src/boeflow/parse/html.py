"""BOE item HTML pages (``diario_boe/txt.php?id=…``) with BeautifulSoup.

The page wraps the same ``<texto>`` markup as the XML in ``<div id="textoxslt">``; the
metadata is a ``<dl>`` of "Publicado en / Departamento / Referencia / Permalink ELI"
plus the title heading. Blocks get the same roles as in the XML, so the structure is found
by the same rules.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag

from boeflow.boe.document import absolute_url, document_pdf_url
from boeflow.core.ids import BOE_ID
from boeflow.core.site import UnsafeUrl, check_boe_url
from boeflow.core.types import ParsedDocument
from boeflow.parse.errors import ParseError
from boeflow.parse.limits import ParseLimits
from boeflow.parse.meta import rango_and_number, spanish_date
from boeflow.parse.structure import (
    NON_TEXT_TAGS,
    Block,
    build_units,
    clean_text,
    expand_spans,
    markdown_table,
    parse_span,
    strip_markers,
)
from boeflow.parse.xml import ROLE_OF_CLASS


def _text(tag: Tag) -> str:
    for br in tag.find_all("br"):
        br.replace_with(" ")
    for img in tag.find_all("img"):
        img.replace_with(f" {_image(img)} ")
    return clean_text(tag.get_text())


def _image(img: Tag) -> str:
    src = str(img.get("src") or "").strip()
    return f"[Imagen: {absolute_url(src) or src}]"


def _table(table: Tag, limits: ParseLimits) -> Block:
    caption_tag = table.find("caption")
    caption = _text(caption_tag) if isinstance(caption_tag, Tag) else ""
    header: list[list[tuple[str, int, int]]] = []
    body: list[list[tuple[str, int, int]]] = []
    for row in table.find_all("tr"):
        cells = [c for c in row.find_all(["td", "th"], recursive=False)]
        values = [(_text(c), parse_span(c.get("colspan")), parse_span(c.get("rowspan")))
                  for c in cells]
        in_head = isinstance(row.parent, Tag) and row.parent.name == "thead"
        is_header = in_head or (not body and bool(cells) and all(
            c.name == "th" or "cabeza_tabla" in " ".join(c.get_attribute_list("class") or [])
            for c in cells))
        (header if is_header and not body else body).append(values)
    grid = expand_spans(header + body, max_span=limits.max_span,
                        max_cells=limits.max_table_cells)
    return Block("table", markdown_table(grid, len(header), caption), caption=caption)


def _form_lines(dl: Tag, depth: int = 0) -> list[str]:
    lines: list[str] = []
    pending = ""
    indent = "  " * depth
    for child in dl.find_all(["dt", "dd"], recursive=False):
        if child.name == "dt":
            if pending:
                lines.append(indent + pending)
            pending = _text(child)
            continue
        nested = child.find("dl")
        if isinstance(nested, Tag):
            if pending:
                lines.append(indent + pending)
                pending = ""
            lines.extend(_form_lines(nested, depth + 1))
        else:
            lines.append(indent + clean_text(f"{pending} {_text(child)}"))
            pending = ""
    if pending:
        lines.append(indent + pending)
    return lines


def max_depth(root: Tag) -> int:
    """The deepest element nesting under ``root``, found without recursion."""
    deepest = 0
    stack: list[tuple[Tag, int]] = [(root, 0)]
    while stack:
        tag, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in tag.children if isinstance(child, Tag))
    return deepest


def html_blocks(container: Tag, limits: ParseLimits) -> list[Block]:
    """Blocks of the document text. The walk recurses once per element level, so callers
    first check ``max_depth`` against ``limits.max_depth``."""
    blocks: list[Block] = []

    def walk(element: Tag, quoted: bool) -> None:
        for child in element.children:
            if not isinstance(child, Tag):
                if str(child).strip() and not quoted:
                    blocks.append(Block("parrafo", clean_text(str(child))))
                continue
            name = child.name
            if name in ("blockquote", "div"):
                walk(child, quoted or name == "blockquote")
                continue
            if name == "dl":
                items: list[list[str]] = []
                for line in _form_lines(child):
                    if not line.startswith(" ") or not items:
                        items.append([])
                    items[-1].append(line)
                for item in items:
                    blocks.append(Block("quoted" if quoted else "form", "\n".join(item)))
                continue
            if name == "table":
                block = _table(child, limits)
            elif name == "img":
                block = Block("image", _image(child))
            else:
                css = " ".join(child.get_attribute_list("class") or []).strip()
                block = Block(ROLE_OF_CLASS.get(css, "parrafo"), strip_markers(_text(child)))
            if not block.text.strip():
                continue
            if quoted:
                block.role = "quoted"
            blocks.append(block)

    walk(container, False)
    return blocks


def _metadata_value(soup: BeautifulSoup, label: str) -> str | None:
    for dt in soup.find_all("dt"):
        if clean_text(dt.get_text()).lower().startswith(label):
            dd = dt.find_next_sibling("dd")
            if isinstance(dd, Tag):
                return clean_text(dd.get_text()) or None
    return None


def parse_html(data: bytes, source: str, limits: ParseLimits | None = None) -> ParsedDocument:
    limits = limits or ParseLimits.from_settings()
    # html.parser: pure Python, never fetches anything referenced by the page.
    soup = BeautifulSoup(data, "html.parser")
    depth = max_depth(soup)
    if depth > limits.max_depth:
        found = BOE_ID.search(source)
        raise ParseError(found.group(0) if found else source,
                         f"HTML nested {depth} levels deep, over the limit of "
                         f"{limits.max_depth} (BOEFLOW_PARSE_MAX_DEPTH)")
    for code in soup.find_all(list(NON_TEXT_TAGS)):
        code.decompose()  # scripts and styles are not document text (nor prompt text)
    reference = _metadata_value(soup, "referencia") or ""
    id_match = BOE_ID.search(reference) or BOE_ID.search(soup.title.get_text() if soup.title
                                                         else "") or BOE_ID.search(source)
    name = id_match.group(0) if id_match else source
    container = soup.find(id="textoxslt")
    if not isinstance(container, Tag):
        raise ParseError(name, "no document text (<div id=\"textoxslt\">) in the HTML page")
    if id_match is None:
        raise ParseError(source, "no BOE identifier in the HTML page")
    blocks = html_blocks(container, limits)
    if not blocks:
        raise ParseError(name, "empty document text in the HTML page")
    title_tag = soup.find(class_="documento-tit") or soup.find("h3") or soup.title
    title = clean_text(title_tag.get_text()) if isinstance(title_tag, Tag) else ""
    rango, number = rango_and_number(title)
    published = spanish_date(_metadata_value(soup, "publicado en") or "")
    pdf_link = soup.find("a", href=re.compile(r"\.pdf$"))
    eli_link = soup.find("a", href=re.compile(r"/eli/"))
    text, units = build_units(blocks)
    dropped: list[str] = []
    eli = None
    if isinstance(eli_link, Tag):
        try:
            eli = check_boe_url(str(eli_link["href"]), path_prefix="/eli/")
        except UnsafeUrl as exc:
            dropped.append(f"ELI descartado: {exc}")
    return ParsedDocument(
        id=name, title=title, rango=rango, official_number=number,
        department=_metadata_value(soup, "departamento"),
        section=None, published=published,
        url_pdf=(document_pdf_url(str(pdf_link["href"]), dropped=dropped)
                 if isinstance(pdf_link, Tag) else None),
        eli=eli, source_format="html", units=units, text=text, warnings=dropped,
    )
