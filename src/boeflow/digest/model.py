"""The daily digest as one typed model: Markdown, HTML and JSON are all rendered from it.

``docs/digest.schema.json`` is this model's JSON schema (``boeflow digest schema`` prints it;
a test keeps the file in step with the code).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
DigestStatus = Literal["draft", "published", "no_publication"]
ReviewState = Literal["auto_checked", "needs_attention", "failed", "not_enriched"]
Stage = Literal["day", "fetch", "parse", "index", "enrich"]

# The BOE's own order of sections, with the labels printed in the BOE.
SECTION_ORDER: tuple[tuple[str, str], ...] = (
    ("1", "I"), ("2A", "II-A"), ("2B", "II-B"), ("3", "III"), ("4", "IV"),
    ("5A", "V-A"), ("5B", "V-B"), ("5C", "V-C"), ("T", "T.C."),
)
# Sections where a title is enough (appointments, announcements): always listed compactly.
COMPACT_SECTIONS = frozenset({"2B", "4", "5A", "5B", "5C"})
WATERMARK = "BORRADOR — pendiente de revisión"


class Summary(BaseModel):
    """A structured summary in one language (the enrich stage's schema)."""

    resumen: str
    puntos_clave: list[str] = Field(default_factory=list)
    a_quien_afecta: str | None = None
    plazos_y_fechas: list[str] = Field(default_factory=list)
    entrada_en_vigor: str | None = None
    normas_afectadas: list[str] = Field(default_factory=list)


class Link(BaseModel):
    relation: str = Field(description="corrige | corregido_por | modifica | modificado_por | "
                          "deroga | derogado_por")
    target_id: str
    url: str
    text: str = ""


class Edit(BaseModel):
    """A reviewer's correction of a summary text, re-checked automatically."""

    language: Literal["es", "va"]
    original: str
    resumen: str
    by: str | None
    at: datetime | None
    checks_passed: bool
    check_reasons: list[str] = Field(default_factory=list)


class ItemReview(BaseModel):
    status: ReviewState
    reasons: list[str] = Field(default_factory=list, description="automatic review reasons")
    note: str | None = Field(None, description="the reviewer's note on this item")
    edits: list[Edit] = Field(default_factory=list)


class Item(BaseModel):
    boe_id: str
    rango: str | None = None
    epigrafe: str | None = None
    title_es: str
    title_va: str | None = None
    summary_es: Summary | None = None
    summary_va: Summary | None = None
    va_source: Literal["apertium", "model", "apertium_reference"] | None = Field(
        None, description="who translated title_va/summary_va: apertium, the translator model, "
        "or apertium_reference (Apertium's translation, shown because the model's failed the "
        "automatic review)")
    url_pdf: str | None = None
    url_html: str | None = None
    url_xml: str | None = None
    eli: str | None = None
    pages: str | None = None
    links: list[Link] = Field(default_factory=list)
    review: ItemReview
    compact: bool = Field(description="listed compactly (title and link only)")
    smoke: bool = False

    @property
    def url(self) -> str:
        return self.eli or self.url_html or self.url_pdf or ""


class Department(BaseModel):
    name: str
    name_va: str | None = None
    code: str | None = None
    items: list[Item] = Field(default_factory=list, description="items shown in full")
    compact: list[Item] = Field(default_factory=list, description="items listed compactly")

    @property
    def count(self) -> int:
        return len(self.items) + len(self.compact)


class Section(BaseModel):
    code: str
    label: str = Field(description="roman numeral as printed in the BOE, e.g. II-A")
    name: str
    name_va: str | None = None
    departments: list[Department] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(d.count for d in self.departments)


class Incidencia(BaseModel):
    boe_id: str | None = Field(description="null for problems of the whole day")
    stage: Stage
    reason: str
    title: str | None = None
    title_va: str | None = None


class WatchMatch(BaseModel):
    boe_id: str
    title: str
    section: str
    why: list[str] = Field(description="which criteria matched")


class WatchlistResult(BaseModel):
    name: str
    criteria: list[str]
    matches: list[WatchMatch] = Field(default_factory=list)
    recipients: int = Field(0, description="how many addresses receive this watchlist")


class Excluded(BaseModel):
    boe_id: str
    title: str


class Decision(BaseModel):
    decision: Literal["approved", "rejected", "timed_out", "without_review"]
    reviewer: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    excluded: list[str] = Field(default_factory=list)
    edited: list[str] = Field(default_factory=list)


class SectionCount(BaseModel):
    code: str
    label: str
    name: str
    name_va: str | None = None
    items: int


class Header(BaseModel):
    date: date
    boe_numbers: list[str] = Field(default_factory=list, description="sumario ids, e.g. "
                                   "BOE-S-2024-268")
    items: int
    sections: list[SectionCount] = Field(default_factory=list)
    summarised: int = 0
    needs_attention: int = 0
    incidencias: int = 0
    excluded: int = 0


class Digest(BaseModel):
    schema_version: Literal[1] = 1
    date: date
    status: DigestStatus
    watermark: str | None = Field(None, description=f"'{WATERMARK}' on drafts")
    version: int | None = Field(None, description="published version (1, 2, …)")
    draft_hash: str = Field("", description="hash of the reviewed content: a rerun with "
                            "the same hash publishes nothing new")
    header: Header
    watchlists: list[WatchlistResult] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    incidencias: list[Incidencia] = Field(default_factory=list)
    excluded: list[Excluded] = Field(default_factory=list)
    decision: Decision | None = None
    generated_at: datetime
    smoke: bool = Field(False, description="summaries come from the tiny smoke models")
    attribution: str = "Basado en datos de la Agencia Estatal Boletín Oficial del Estado."

    def all_items(self) -> list[Item]:
        return [item for s in self.sections for d in s.departments
                for item in (*d.items, *d.compact)]

    def flagged(self) -> list[Item]:
        return [i for i in self.all_items() if i.review.status in ("needs_attention", "failed")]
