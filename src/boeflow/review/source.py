"""The text a summary or translation is made from: a BOE document as ordered sections.

There is one reader: ``boeflow.parse`` (XML, PDF or HTML) gives a ``ParsedDocument``, and
``from_parsed`` groups its structural units into the sections the summariser packs into
prompts. Documents are found by BOE id in the raw store (``RawStore`` at the configured raw
store URL, local or object store), then in the recorded samples. A ``SourceDocument``'s
``source_hash`` keys the caches: same text, same hash, no regeneration.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, PrivateAttr

from boeflow.boe.document import BOE_ID
from boeflow.boe.store import TEMP_MARKER
from boeflow.core.settings import Settings, redact_url
from boeflow.core.types import ParsedDocument, ReferenceOut, Unit

if TYPE_CHECKING:
    from boeflow.boe.store import RawStore
    from boeflow.review.anchors import AnchorSource

log = logging.getLogger(__name__)

SPANISH_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
                  "septiembre", "octubre", "noviembre", "diciembre")

# When an item is stored in several representations, the most structured one is read.
_PREFERENCE = {"xml": 0, "html": 1, "htm": 1, "pdf": 2}


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
    # The parser's text and units (offsets into that text), for source anchors and the
    # facts card; not part of the content hash nor of dumps.
    parsed_text: str = Field("", exclude=True)
    units: list[Unit] = Field(default_factory=list, exclude=True)
    references: list[ReferenceOut] = Field(default_factory=list, exclude=True)
    _anchors: AnchorSource | None = PrivateAttr(None)

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

    def anchor_source(self) -> AnchorSource:
        """The parsed document for source anchors (path, offsets into the parsed text)."""
        from boeflow.review.anchors import AnchorSource

        if self._anchors is None:  # built once per document (its facts and sentences)
            from boeflow.review.anchors import SourceAnchor
            from boeflow.review.card import facts_card

            self._anchors = (
                AnchorSource(text=self.parsed_text, units=self.units, header=self.header())
                if self.parsed_text else AnchorSource(text=self.text, header=self.header()))
            # The card's computed dates (its own anchors: no second copy of the rules).
            card = facts_card(self)
            for entry in [card["entrada_en_vigor"], *card["plazos"]]:
                if entry and entry.get("date") and entry.get("source"):
                    self._anchors.computed.setdefault(
                        entry["date"], SourceAnchor.model_validate(entry["source"]))
        return self._anchors


def _detect_language(text: str) -> Literal["es", "va"]:
    from boeflow.review.checks import detect_language

    lang, _ = detect_language(text[:4000]) if text.strip() else ("es", 1.0)
    return "va" if lang == "ca" else "es"


_PARSED_HEADINGS = {"libro", "titulo", "capitulo", "seccion", "subseccion"}
_PARSED_STARTS = {"articulo", "disposicion", "anexo", "preambulo", "firma"}


def from_parsed(parsed: ParsedDocument, path: Path | str | None = None) -> SourceDocument:
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
                         published=parsed.published, sections=sections,
                         path=None if path is None else str(path), parsed_text=parsed.text,
                         units=parsed.units, references=parsed.references)
    doc.language = _detect_language(doc.text)
    return doc


def read_document(path: Path) -> SourceDocument:
    """A BOE document file (XML, PDF or HTML) through the project parser."""
    from boeflow.parse import ParseError, parse_file

    try:
        parsed = parse_file(path)
    except ParseError as exc:
        raise ValueError(str(exc)) from exc
    return from_parsed(parsed, path)


def read_bytes(data: bytes, source: str) -> SourceDocument:
    from boeflow.parse import ParseError, parse_bytes

    try:
        parsed = parse_bytes(data, source)
    except ParseError as exc:
        raise ValueError(str(exc)) from exc
    return from_parsed(parsed, source)


def find_in_raw_store(settings: Settings, doc_id: str) -> tuple[RawStore, str] | None:
    """(store, relative path) of a fetched document: XML preferred over HTML over PDF."""
    from boeflow.boe.store import RawStore, store_url

    if not BOE_ID.fullmatch(doc_id):
        return None
    store = RawStore(store_url(settings))
    year = doc_id.split("-")[2]
    found: list[str] = []
    # Items live under boe/YYYY/MM/DD/items/; an item may be published in the next year.
    for folder in (year, str(int(year) + 1)):
        # ``doc_id`` matched the BOE id grammar: no glob or path characters in the pattern.
        pattern = f"{store.root}/boe/{folder}/*/*/items/{doc_id}.*"
        found += [str(p) for p in store.fs.glob(pattern)]
    start = len(store.root) + 1
    candidates = sorted((p[start:] for p in found if TEMP_MARKER not in p
                         and p.rsplit(".", 1)[-1] in _PREFERENCE),
                        key=lambda p: (_PREFERENCE.get(p.rsplit(".", 1)[-1], 9), p))
    return (store, candidates[0]) if candidates else None


def load_source(settings: Settings, ref: str) -> SourceDocument:
    """A file path or a BOE id (``BOE-A-2020-4859``): the raw store, then the samples."""
    path = Path(ref)
    if path.is_file():
        return read_document(path)
    if BOE_ID.fullmatch(ref):
        stored = find_in_raw_store(settings, ref)
        if stored is not None:
            store, relative = stored
            return read_bytes(store.read(relative), f"{store.url}/{relative}")
        for folder in (settings.samples_dir / "documents", settings.samples_dir):
            candidate = folder / f"{ref}.xml"
            if candidate.is_file():
                return read_document(candidate)
        raise FileNotFoundError(f"{ref} is not in the raw store ({store_url_of(settings)}) "
                                "nor in the samples: fetch its day first (`boeflow fetch`)")
    raise FileNotFoundError(f"{ref}: no such file, and not a BOE identifier")


def store_url_of(settings: Settings) -> str:
    from boeflow.boe.store import store_url

    return str(redact_url(store_url(settings)))
