"""BOE item XML (``diario_boe/xml.php?id=…``): metadata via :mod:`boeflow.boe.document`,
body ``<texto>`` walked with lxml into :class:`~boeflow.parse.structure.Block` s."""

from __future__ import annotations

import re

from lxml import etree

from boeflow.boe.document import BOE_ID, parse_document_meta
from boeflow.parse.errors import ParseError
from boeflow.parse.structure import (
    HIERARCHY_ROLES,
    Block,
    build_units,
    clean_text,
    expand_spans,
    markdown_table,
    strip_markers,
)
from boeflow.types import ParsedDocument, ReferenceOut
from boeflow.xmlsafe import parse_xml_bytes

_IDENTIFIER = re.compile(rb"<identificador>\s*(BOE-[A-Z]-\d{4}-\d+)\s*</identificador>")
_HEADER_CELL = re.compile(r"cabeza_tabla")
ROLE_OF_CLASS = {
    **{name: name for name in HIERARCHY_ROLES},
    "articulo": "articulo",
    "firma_rey": "firma", "firma_ministro": "firma",
    "imagen": "image", "imagen_girada": "image",
    "centro_redonda": "centro", "centro_cursiva": "centro", "centro_negrita": "centro",
    "centro": "centro",
}


def identifier_in(data: bytes, fallback: str) -> str:
    """The BOE id named in raw (possibly broken) bytes, for error messages."""
    match = _IDENTIFIER.search(data[:20000]) or re.search(rb"BOE-[A-Z]-\d{4}-\d+", data[:20000])
    return match.group(1 if match.re is _IDENTIFIER else 0).decode() if match else fallback


def element_text(element: etree._Element) -> str:
    """Whitespace-normalised text of an element; ``<br/>`` separates words."""
    parts: list[str] = []
    for node in element.iter():
        if node.tag == "br":
            parts.append(" ")
        elif node is not element and node.tag == "img":
            parts.append(f" {image_placeholder(node)} ")
        if node.text and node.tag not in ("br", "img") and not isinstance(node, etree._Comment):
            parts.append(node.text)
        if node is not element and node.tail:
            parts.append(node.tail)
    return clean_text("".join(parts))


def image_placeholder(img: etree._Element) -> str:
    src = img.get("src", "").strip()
    if src.startswith("/"):
        src = "https://www.boe.es" + src
    alt = clean_text(img.get("alt", ""))
    return f"[Imagen: {src}]" if not alt else f"[Imagen: {alt} ({src})]"


def table_block(table: etree._Element) -> Block:
    caption_el = table.find("caption")
    caption = element_text(caption_el) if caption_el is not None else ""
    header: list[list[tuple[str, int, int]]] = []
    body: list[list[tuple[str, int, int]]] = []
    for row in table.iter("tr"):
        cells = [(element_text(cell), int(cell.get("colspan", "1") or 1),
                  int(cell.get("rowspan", "1") or 1))
                 for cell in row if cell.tag in ("td", "th")]
        parent = row.getparent()
        in_head = parent is not None and parent.tag == "thead"
        is_header = in_head or (not body and all(
            c.tag == "th" or _HEADER_CELL.search(c.get("class", "")) for c in row
            if c.tag in ("td", "th")))
        (header if is_header and not body else body).append(cells)
    grid = expand_spans(header + body)
    return Block("table", markdown_table(grid, len(header), caption), caption=caption)


def form_lines(dl: etree._Element, depth: int = 0) -> list[str]:
    """``<dl><dt>1. Poder adjudicador:</dt><dd>…</dd>`` → indented ``term value`` lines."""
    lines: list[str] = []
    indent = "  " * depth
    pending = ""
    for child in dl:
        if child.tag == "dt":
            if pending:
                lines.append(indent + pending)
            pending = element_text(child)
        elif child.tag == "dd":
            nested = child.find("dl")
            if nested is not None:
                if pending:
                    lines.append(indent + pending)
                    pending = ""
                lines.extend(form_lines(nested, depth + 1))
            else:
                value = element_text(child)
                lines.append(indent + clean_text(f"{pending} {value}"))
                pending = ""
    if pending:
        lines.append(indent + pending)
    return lines


def texto_blocks(texto: etree._Element) -> list[Block]:
    blocks: list[Block] = []

    def walk(element: etree._Element, quoted: bool) -> None:
        for child in element:
            if isinstance(child, etree._Comment | etree._ProcessingInstruction):
                continue
            tag = child.tag
            if tag in ("blockquote", "div"):
                walk(child, quoted or tag == "blockquote")
                continue
            if tag == "table":
                block = table_block(child)
            elif tag == "dl":
                # one block per top-level item so that a long form splits between items
                for item in _form_items(child):
                    blocks.append(Block("quoted" if quoted else "form", item))
                continue
            elif tag == "img":
                block = Block("image", image_placeholder(child))
            else:
                css = (child.get("class") or "").strip()
                block = Block(ROLE_OF_CLASS.get(css, "parrafo"), strip_markers(element_text(child)))
            if not block.text.strip():
                continue  # empty <p/> spacers carry nothing
            if quoted:
                block.role = "quoted"
            blocks.append(block)

    walk(texto, False)
    return blocks


def _form_items(dl: etree._Element) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    for line in form_lines(dl):
        if not line.startswith(" ") and current:
            items.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        items.append("\n".join(current))
    return items


def parse_xml(data: bytes, source: str) -> ParsedDocument:
    """Parse a BOE ``<documento>``; raises :class:`ParseError` naming the document."""
    name = identifier_in(data, source)
    try:
        root = parse_xml_bytes(data)
    except etree.XMLSyntaxError as exc:
        raise ParseError(name, f"malformed or truncated XML ({exc})") from exc
    try:
        meta = parse_document_meta(root)
    except ValueError as exc:
        raise ParseError(name, str(exc)) from exc
    texto = root.find("texto")
    if texto is None:
        raise ParseError(meta.id, "no <texto> element: the document has no body")
    blocks = texto_blocks(texto)
    if not blocks:
        raise ParseError(meta.id, "empty <texto>: the document has no body text")
    text, units = build_units(blocks)
    if not BOE_ID.fullmatch(meta.id):
        raise ParseError(source, f"identifier {meta.id!r} is not a BOE id")
    return ParsedDocument(
        id=meta.id, title=meta.title, rango=meta.rango, department=meta.department,
        section=meta.section, published=meta.published, url_pdf=meta.url_pdf, eli=meta.eli,
        official_number=meta.official_number, materias=meta.materias,
        references=[ReferenceOut.model_validate(ref.as_dict()) for ref in meta.references],
        source_format="xml", units=units, text=text,
    )
