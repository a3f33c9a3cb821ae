"""Data types passed between stages (parse → chunk → embed → index → enrich → review).

Each stage reads and writes these, so any stage can be rerun alone from stored JSON.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

UnitKind = Literal[
    "preambulo", "libro", "titulo", "capitulo", "seccion", "subseccion", "articulo",
    "disposicion", "anexo", "tabla", "firma", "parrafo", "imagen",
]
DisposicionKind = Literal["adicional", "transitoria", "derogatoria", "final", "otra"]


class ReferenceOut(BaseModel):
    direction: Literal["anterior", "posterior"]
    target_id: str
    code: str = ""
    word: str = ""
    text: str = ""
    relation: str


class Unit(BaseModel):
    """One structural unit of a document, in reading order."""

    kind: UnitKind
    heading: str = ""
    path: list[str] = Field(default_factory=list, description="enclosing headings, outermost first")
    text: str = ""
    disposicion: DisposicionKind | None = None
    start: int = Field(0, description="character offset of text in ParsedDocument.text")
    end: int = 0


class ParsedDocument(BaseModel):
    """``boeflow parse FILE --json`` output."""

    id: str
    title: str
    rango: str | None = None
    department: str | None = None
    section: str | None = None
    published: date | None = None
    url_pdf: str | None = None
    eli: str | None = None
    official_number: str | None = Field(None, description="e.g. 2/2025 (from <numero_oficial>)")
    materias: list[str] = Field(default_factory=list)
    references: list[ReferenceOut] = Field(default_factory=list)
    source_format: Literal["xml", "pdf", "html"] = "xml"
    language: str = "es"
    units: list[Unit] = Field(default_factory=list)
    text: str = Field("", description="the document text; units' offsets point into it")
    # Left out of dumps when empty, so documents without anomalies keep their content hash.
    warnings: list[str] = Field(default_factory=list, exclude_if=lambda value: not value,
                                description="anomalies repaired while parsing (e.g. encoding)")


class Chunk(BaseModel):
    """``boeflow chunk FILE --json`` output, one JSON line each."""

    id: str = Field(description="stable: document id + structural path + content hash")
    doc_id: str
    path: list[str]
    heading: str
    kind: str
    text: str = Field(description="context line + bare text, what gets embedded")
    bare_text: str
    n_tokens: int
    start: int = Field(description="character offset into ParsedDocument.text")
    end: int
    overlap_chars: int = Field(0, description="leading characters repeated from the previous chunk")
    # Denormalised document fields for filtering in search.
    title: str = ""
    rango: str | None = None
    department: str | None = None
    section: str | None = None
    published: date | None = None
    materias: list[str] = Field(default_factory=list)
    url_pdf: str | None = None
    eli: str | None = None
