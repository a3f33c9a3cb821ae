"""BOE item PDFs with PyMuPDF.

Text blocks are put in reading order (columns left to right), the repeated page furniture
is removed ("BOLETÍN OFICIAL DEL ESTADO", "Núm. … Pág. …", the vertical "cve: … Verificable
en …" strip, the legal-deposit footer), hyphenated line ends are joined and blocks that
continue a sentence across a page or block break are merged. Headings are then recognised
from the text (PDF has no classes) and the same structure rules as for XML apply. The BOE
identifier is the PDF's ``/Subject``; the first page's preface (section, department,
number + title) gives the rest of the metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pymupdf

from boeflow.core.ids import BOE_ID
from boeflow.core.types import ParsedDocument
from boeflow.parse.errors import ParseError
from boeflow.parse.meta import pdf_url, rango_and_number, section_code, spanish_date
from boeflow.parse.structure import Block, build_units, clean_text

_FURNITURE = (
    re.compile(r"^BOLET[IÍ]N OFICIAL DEL ESTADO$"),
    re.compile(r"^N[uú]m\. \d+\s.*P[aá]g\. \d+", re.S),
    re.compile(r"^cve: BOE-", re.I),
    re.compile(r"^Verificable en https?://www\.boe\.es", re.I),
    re.compile(r"^https?://www\.boe\.es\s+BOLET[IÍ]N OFICIAL DEL ESTADO", re.S),
    re.compile(r"D\. ?L\.: M-1/1958"),
)
_SECTION_HEADER = re.compile(r"Sec\.\s+([IVXT]+)(?:-([A-C]))?\.")
_SENTENCE_END = re.compile(r"[.:;»”)!?]$")
_ARTICLE = re.compile(r"^Art[ií]culo\s+(?:\d+|[úu]nico)", re.I)
_DISPOSICION = re.compile(
    r"^Disposici[oó]n\s+(?:adicional|transitoria|derogatoria|final)\b", re.I)
_HEADINGS = (
    (re.compile(r"^ANEXO(?:\s+[IVXLC\d]+)?\.?$"), "anexo_num"),
    (re.compile(r"^LIBRO\s+\w+$"), "libro_num"),
    (re.compile(r"^T[IÍ]TULO\s+(?:[IVXLC]+|PRELIMINAR)$"), "titulo_num"),
    (re.compile(r"^CAP[IÍ]TULO\s+[\wÚÉ]+$"), "capitulo_num"),
    (re.compile(r"^Secci[oó]n\s+\d+\.ª\s", re.I), "seccion"),
    (re.compile(r"^Subsecci[oó]n\s+\d+\.ª\s", re.I), "subseccion"),
)
# Margins of the BOE page furniture, in points (A4 is 595 x 842).
_TOP_BAND = 92.0
_BOTTOM_BAND = 790.0
_RIGHT_STRIP = 550.0


@dataclass
class _TextBlock:
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    centred: bool  # horizontally centred on the page
    narrow: bool  # much narrower than the text column (a heading, not a paragraph)


def _join_lines(raw: str) -> str:
    """Lines of a block → one paragraph; "infor-\\nmación" → "información"."""
    out = ""
    for line in (part.strip() for part in raw.split("\n")):
        if not line:
            continue
        if out.endswith("-") and line[:1].islower() and out[-2:-1].isalpha():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return clean_text(out)


def _is_furniture(block: _TextBlock, height: float) -> bool:
    if any(pattern.search(block.text) for pattern in _FURNITURE):
        return True
    return block.y1 <= _TOP_BAND or block.y0 >= min(_BOTTOM_BAND, height - 40) or (
        block.x0 >= _RIGHT_STRIP)


def _reading_order(blocks: list[_TextBlock], width: float) -> list[_TextBlock]:
    """Full-width blocks in vertical order; between them, a left column before a right."""
    middle = width / 2
    ordered: list[_TextBlock] = []
    left: list[_TextBlock] = []
    right: list[_TextBlock] = []

    def flush() -> None:
        ordered.extend(sorted(left, key=lambda b: (b.y0, b.x0)))
        ordered.extend(sorted(right, key=lambda b: (b.y0, b.x0)))
        left.clear()
        right.clear()

    for block in sorted(blocks, key=lambda b: (b.y0, b.x0)):
        if block.x1 <= middle + 5:
            left.append(block)
        elif block.x0 >= middle - 5:
            right.append(block)
        else:
            flush()
            ordered.append(block)
    flush()
    return ordered


def _page_blocks(document: Any) -> tuple[list[_TextBlock], list[str]]:
    body: list[_TextBlock] = []
    furniture: list[str] = []
    for number, page in enumerate(document):
        width, height = page.rect.width, page.rect.height
        page_blocks: list[_TextBlock] = []
        for x0, y0, x1, y1, raw, _index, kind in page.get_text("blocks"):
            text = f"[Imagen: página {number + 1}]" if kind == 1 else _join_lines(raw)
            if not text:
                continue
            centre = (x0 + x1) / 2
            block = _TextBlock(number, x0, y0, x1, y1, text, abs(centre - width / 2) < 12,
                               (x1 - x0) < width * 0.6)
            if kind == 0 and _is_furniture(block, height):
                furniture.append(text)
            else:
                page_blocks.append(block)
        body.extend(_reading_order(page_blocks, width))
    return body, furniture


def _merge_continuations(blocks: list[_TextBlock]) -> list[_TextBlock]:
    """A block that starts in lower case continues the previous one's sentence."""
    merged: list[_TextBlock] = []
    for block in blocks:
        previous = merged[-1] if merged else None
        if (previous is not None and not block.text.startswith("[Imagen")
                and not _SENTENCE_END.search(previous.text) and block.text[:1].islower()):
            joiner = "" if previous.text.endswith("-") and previous.text[-2:-1].isalpha() else " "
            base = previous.text[:-1] if joiner == "" else previous.text
            previous.text = base + joiner + block.text
            continue
        merged.append(block)
    return merged


def _role(block: _TextBlock, previous_role: str) -> str:
    text = block.text
    if text.startswith("[Imagen"):
        return "image"
    if _ARTICLE.match(text) or _DISPOSICION.match(text):
        return "articulo"
    for pattern, role in _HEADINGS:
        if pattern.match(text):
            return role
    if block.centred and previous_role.endswith("_num"):
        return previous_role.replace("_num", "_tit")
    if block.centred and block.narrow and len(text) < 120:
        return "centro"
    return "parrafo"


def parse_pdf(data: bytes, source: str) -> ParsedDocument:
    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises several types for damaged files
        raise ParseError(source, f"corrupt or unreadable PDF ({exc})") from exc
    with document:
        if document.page_count == 0 or (document.is_repaired
                                        and b"%%EOF" not in data[-2048:]):
            found = BOE_ID.search(source)
            raise ParseError(found.group(0) if found else source,
                             "truncated or corrupt PDF (no %%EOF trailer or no readable page)")
        metadata = document.metadata or {}
        subject = (metadata.get("subject") or "").strip()
        id_match = BOE_ID.fullmatch(subject) or BOE_ID.search(source)
        name = id_match.group(0) if id_match else source
        if document.needs_pass or document.is_encrypted:
            raise ParseError(name, "encrypted PDF (a password is required to read it)")
        if id_match is None:
            raise ParseError(source, "no BOE identifier in the PDF metadata (/Subject)")
        try:
            blocks, furniture = _page_blocks(document)
        except Exception as exc:
            raise ParseError(name, f"corrupt PDF content ({exc})") from exc

    number = name.rsplit("-", 1)[-1]
    title_at = next((i for i, b in enumerate(blocks[:12]) if b.text.split(" ", 1)[0] == number),
                    None)
    preface: list[str] = []
    title = ""
    if title_at is not None:
        preface = [b.text for b in blocks[:title_at]]
        title = blocks[title_at].text[len(number):].strip()
        blocks = blocks[title_at + 1:]
    body = _merge_continuations(blocks)
    if not body:
        raise ParseError(name, "the PDF has no body text")

    roles: list[Block] = []
    previous = ""
    for block in body:
        previous = _role(block, previous)
        roles.append(Block(previous, block.text))
    text, units = build_units(roles)

    section = None
    header = _SECTION_HEADER.search(" ".join(furniture))
    if header:
        section = section_code(header.group(1), header.group(2))
    published = spanish_date(" ".join(furniture[:3])) or spanish_date(
        (metadata.get("keywords") or "").rsplit(";", 1)[-1])
    department = next((p for p in reversed(preface) if p.isupper() and not re.match(
        r"^[IVX]+\.\s", p) and not re.match(r"^[A-C]\.\s", p)), None)
    rango, official_number = rango_and_number(title)
    return ParsedDocument(
        id=name, title=title, rango=rango, official_number=official_number,
        department=department or (metadata.get("author") or None), section=section,
        published=published, url_pdf=pdf_url(name, published), source_format="pdf",
        units=units, text=text,
    )
