"""The text a summary or translation is made from: a BOE document as ordered sections.

``load_source`` prefers the project parser (``boeflow.parse.parse_file``) and falls back to
a minimal reading of the BOE XML (``<texto>`` split at articles, annexes and headings) so
that enrichment works on its own. Either way the result is a ``SourceDocument`` whose
``source_hash`` keys the cache: same text, same hash, no regeneration.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from datetime import date
from pathlib import Path
from typing import Any, Literal

from lxml import etree
from pydantic import BaseModel, Field

from boeflow.boe.document import BOE_ID, parse_document_meta
from boeflow.config import Settings
from boeflow.xmlsafe import parse_xml_bytes

log = logging.getLogger(__name__)

SPANISH_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
                  "septiembre", "octubre", "noviembre", "diciembre")

# Paragraph classes of BOE XML that open a new structural section.
_SECTION_START = {"articulo", "anexo", "anexo_num", "preambulo"}
_HEADING = {"libro_num", "libro_tit", "titulo_num", "titulo_tit", "titulo", "capitulo_num",
            "capitulo_tit", "capitulo", "seccion", "subseccion"}


class SourceSection(BaseModel):
    heading: str = ""
    text: str


class SourceDocument(BaseModel):
    id: str
    title: str
    rango: str | None = None
    department: str | None = None
    section: str | None = None
    published: date | None = None
    language: Literal["es", "va"] = "es"
    sections: list[SourceSection] = Field(default_factory=list)
    path: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(s.text if not s.heading or s.text.startswith(s.heading)
                           else f"{s.heading}\n{s.text}" for s in self.sections)

    @property
    def source_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.id, self.title, self.section or "", self.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()

    @property
    def is_short_notice(self) -> bool:
        """Sections 2 (appointments) and 5 (notices) get a short one-pass summary."""
        return (self.section or "").strip()[:1] in ("2", "5")

    def header(self) -> str:
        """Metadata lines given to the model (and to the review as part of the source)."""
        lines = [f"Identificador: {self.id}", f"Título: {self.title}"]
        if self.rango:
            lines.append(f"Rango: {self.rango}")
        if self.department:
            lines.append(f"Departamento: {self.department}")
        if self.section:
            lines.append(f"Sección del BOE: {self.section}")
        if self.published:
            p = self.published
            lines.append(f"Fecha de publicación: {p.day} de {SPANISH_MONTHS[p.month - 1]} "
                         f"de {p.year}")
        return "\n".join(lines)

    def review_text(self) -> str:
        """Everything the model saw about the document: facts must come from here."""
        return f"{self.header()}\n\n{self.text}"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _local(element: etree._Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _element_text(element: etree._Element) -> str:
    local = _local(element)
    if local == "table":
        rows = []
        for row in element.iter("{*}tr", "tr"):
            cells = [_clean("".join(c.itertext())) for c in row if isinstance(c.tag, str)]
            if any(cells):
                rows.append(" | ".join(cells))
        return "\n".join(rows)
    if local == "dl":
        lines = [_clean("".join(node.itertext())) for node in element.iter()
                 if _local(node) in ("dt", "dd") and not any(_local(c) == "dl" for c in node)]
        return "\n".join(line for line in lines if line)
    return _clean("".join(element.itertext()))


def sections_from_xml(texto: etree._Element | None) -> list[SourceSection]:
    """``<texto>`` split where BOE XML opens an article, annex or heading."""
    if texto is None:
        return []
    sections: list[SourceSection] = []
    headings: list[str] = []
    body: list[str] = []

    def flush() -> None:
        if body:
            sections.append(SourceSection(heading=" ".join(headings), text="\n".join(body)))
            body.clear()
            headings.clear()

    for element in texto:
        if not isinstance(element.tag, str):
            continue
        cls = element.get("class", "")
        text = _element_text(element)
        if not text:
            continue
        if cls in _HEADING:
            if body:
                flush()
            headings.append(text)
            continue
        if cls in _SECTION_START and body:
            flush()
        body.append(text)
    flush()
    return sections


def _detect_language(text: str) -> Literal["es", "va"]:
    from boeflow.review.checks import detect_language

    lang, _ = detect_language(text[:4000]) if text.strip() else ("es", 1.0)
    return "va" if lang == "ca" else "es"


def read_boe_xml(path: Path) -> SourceDocument:
    """Minimal reading of a BOE item XML (``diario_boe/xml.php?id=…``)."""
    root = parse_xml_bytes(path.read_bytes())
    meta = parse_document_meta(root)
    sections = sections_from_xml(root.find("texto"))
    doc = SourceDocument(id=meta.id, title=meta.title, rango=meta.rango,
                         department=meta.department, section=meta.section,
                         published=meta.published, sections=sections, path=str(path))
    doc.language = _detect_language(doc.text)
    return doc


_PARSED_HEADINGS = {"libro", "titulo", "capitulo", "seccion", "subseccion"}
_PARSED_STARTS = {"articulo", "disposicion", "anexo", "preambulo", "firma"}


def _from_parsed(parsed: Any, path: Path) -> SourceDocument:
    """Group the parser's units into sections: headings join the article that follows them,
    paragraphs and tables join the unit before them."""
    sections: list[SourceSection] = []
    heading_only = False
    for unit in parsed.units:
        text = unit.text.strip() or unit.heading.strip()
        if not text:
            continue
        if unit.kind in _PARSED_HEADINGS:
            if sections and heading_only:
                sections[-1].text += "\n" + text
            else:
                sections.append(SourceSection(text=text))
                heading_only = True
            continue
        if not sections or (unit.kind in _PARSED_STARTS and not heading_only):
            sections.append(SourceSection(text=text))
        else:
            sections[-1].text += "\n" + text
        heading_only = False
    if not sections and parsed.text.strip():  # PDF or HTML without structure
        sections = [SourceSection(text=parsed.text.strip())]
    doc = SourceDocument(id=parsed.id, title=parsed.title, rango=parsed.rango,
                         department=parsed.department, section=parsed.section,
                         published=parsed.published, sections=sections, path=str(path))
    doc.language = _detect_language(doc.text)
    return doc


def read_document(path: Path) -> SourceDocument:
    """A BOE document file, through the project parser when it is available."""
    try:
        # Imported by name: the parser is another stage and may be absent in this checkout.
        parser = importlib.import_module("boeflow.parse")
    except ImportError:
        return read_boe_xml(path)
    parse_error: type[Exception] = getattr(parser, "ParseError", ValueError)
    try:
        parsed = parser.parse_file(path)
    except parse_error as exc:
        raise ValueError(str(exc)) from exc
    return _from_parsed(parsed, path)


def find_document(settings: Settings, doc_id: str) -> Path | None:
    """A stored document by BOE id: the raw store under ``data_dir`` first, then the samples."""
    names = (f"{doc_id}.xml",)
    if settings.data_dir.is_dir():
        for name in names:
            for found in sorted(settings.data_dir.rglob(name)):
                return found
    for folder in (settings.samples_dir / "documents", settings.samples_dir):
        candidate = folder / names[0]
        if candidate.is_file():
            return candidate
    return None


def load_source(settings: Settings, ref: str) -> SourceDocument:
    """A file path or a BOE id (``BOE-A-2020-4859``)."""
    path = Path(ref)
    if path.is_file():
        return read_document(path)
    if BOE_ID.fullmatch(ref):
        found = find_document(settings, ref)
        if found is None:
            raise FileNotFoundError(f"{ref} is not in {settings.data_dir} nor in the samples")
        return read_document(found)
    raise FileNotFoundError(f"{ref}: no such file, and not a BOE identifier")
