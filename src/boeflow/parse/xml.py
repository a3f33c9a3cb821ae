"""BOE item XML (``diario_boe/xml.php?id=…``): metadata via :mod:`boeflow.boe.document`,
body ``<texto>`` walked with lxml into :class:`~boeflow.parse.structure.Block` s."""

from __future__ import annotations

import re

from lxml import etree

from boeflow.boe.document import parse_document_meta
from boeflow.core.ids import BOE_ID, BOE_ID_BYTES, BOE_ID_PATTERN
from boeflow.core.types import ParsedDocument, ReferenceOut
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.parse.errors import ParseError
from boeflow.parse.limits import ParseLimits
from boeflow.parse.structure import (
    HIERARCHY_ROLES,
    NON_TEXT_TAGS,
    Block,
    build_units,
    clean_text,
    expand_spans,
    markdown_table,
    parse_span,
    strip_markers,
)

_IDENTIFIER = re.compile(rb"<identificador>\s*(" + BOE_ID_PATTERN.encode("ascii")
                         + rb")\s*</identificador>")
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
    match = _IDENTIFIER.search(data[:20000]) or BOE_ID_BYTES.search(data[:20000])
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


def table_block(table: etree._Element, limits: ParseLimits) -> Block:
    caption_el = table.find("caption")
    caption = element_text(caption_el) if caption_el is not None else ""
    header: list[list[tuple[str, int, int]]] = []
    body: list[list[tuple[str, int, int]]] = []
    for row in table.iter("tr"):
        cells = [(element_text(cell), parse_span(cell.get("colspan")),
                  parse_span(cell.get("rowspan")))
                 for cell in row if cell.tag in ("td", "th")]
        parent = row.getparent()
        in_head = parent is not None and parent.tag == "thead"
        is_header = in_head or (not body and all(
            c.tag == "th" or _HEADER_CELL.search(c.get("class", "")) for c in row
            if c.tag in ("td", "th")))
        (header if is_header and not body else body).append(cells)
    grid = expand_spans(header + body, max_span=limits.max_span,
                        max_cells=limits.max_table_cells)
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


def texto_blocks(texto: etree._Element, limits: ParseLimits) -> list[Block]:
    blocks: list[Block] = []

    # Recursion is bounded by libxml2, which refuses documents nested deeper than 256.
    def walk(element: etree._Element, quoted: bool) -> None:
        for child in element:
            if isinstance(child, etree._Comment | etree._ProcessingInstruction):
                continue
            tag = child.tag
            if tag in NON_TEXT_TAGS:
                continue  # code or styling, never document text (nor prompt text)
            if tag in ("blockquote", "div"):
                walk(child, quoted or tag == "blockquote")
                continue
            if tag == "table":
                block = table_block(child, limits)
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


_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_SINGLE_BYTE = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "iso-8859-15", "windows-1252",
                "cp1252"}


def repair_declared_encoding(data: bytes) -> tuple[bytes, str | None]:
    """Bytes declared single-byte (Latin-1/Windows-1252) that are in fact valid UTF-8 with
    multi-byte characters would parse into mojibake ("artÃ\xadculo"). Such a document is
    re-declared as UTF-8; returns the bytes to parse and a warning when it was repaired."""
    match = _DECLARATION.match(data[:200])
    if not match or match.group(1).decode("ascii").lower() not in _SINGLE_BYTE:
        return data, None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data, None  # genuinely single-byte
    if data.isascii():
        return data, None
    declared = match.group(1).decode("ascii")
    start, end = match.span(1)
    return (data[:start] + b"UTF-8" + data[end:],
            f"declared {declared} but encoded as UTF-8: read as UTF-8")


def parse_xml(data: bytes, source: str, limits: ParseLimits | None = None) -> ParsedDocument:
    """Parse a BOE ``<documento>``; raises :class:`ParseError` naming the document."""
    limits = limits or ParseLimits.from_settings()
    name = identifier_in(data, source)
    data, encoding_warning = repair_declared_encoding(data)
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
    # Code and styling are not text: drop them (their tails are text and stay).
    etree.strip_elements(texto, *NON_TEXT_TAGS, with_tail=False)
    blocks = texto_blocks(texto, limits)
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
        warnings=([encoding_warning] if encoding_warning else []) + meta.dropped_links,
    )
