"""The daily digest as one typed model: Markdown, HTML and JSON are all rendered from it.

``docs/digest.schema.json`` is this model's JSON schema (``boeflow digest schema`` prints it;
a test keeps the file in step with the code).
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from boeflow.core.sections import SECTIONS
from boeflow.core.site import BOE_HOSTS, check_boe_url, defang_urls

SCHEMA_VERSION = 1
DigestStatus = Literal["draft", "published", "no_publication"]
ReviewState = Literal["auto_checked", "needs_attention", "failed", "not_enriched"]
Stage = Literal["day", "fetch", "parse", "index", "enrich"]

# The BOE's own order of sections, with the labels printed in the BOE.
# (code, numeral) in the BOE's order, and the sections where a title is enough: both from
# the one table of sections.
SECTION_ORDER: tuple[tuple[str, str], ...] = tuple((s.code, s.numeral) for s in SECTIONS)
COMPACT_SECTIONS = frozenset(s.code for s in SECTIONS if s.compact)
WATERMARK = "BORRADOR — pendiente de revisión"

# Links to the BOE: safe by construction. A digest cannot hold a URL that is not https on
# a BOE host (javascript:, data:, another host, a space or angle bracket are refused when
# the model is built or read back), so no template can render one.
_HOSTS = "|".join(re.escape(h) for h in sorted(BOE_HOSTS))
BOE_URL_PATTERN = rf"^https://({_HOSTS})/[A-Za-z0-9._~/?=&%+:,;@()-]*$"
ELI_PATTERN = rf"^https://({_HOSTS})/eli/[A-Za-z0-9._~/?=&%+:,;@()-]*$"


def _boe_url(value: str) -> str:
    return check_boe_url(value)


def _eli(value: str) -> str:
    return check_boe_url(value, path_prefix="/eli/")


BoeUrl = Annotated[str, Field(pattern=BOE_URL_PATTERN), AfterValidator(_boe_url)]
EliUrl = Annotated[str, Field(pattern=ELI_PATTERN), AfterValidator(_eli)]


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
    url: BoeUrl
    text: str = ""


class DiffPart(BaseModel):
    """A run of words of a before/after difference."""

    op: Literal["equal", "delete", "insert", "skip"] = Field(
        description="skip: a long unchanged run left out (its word count in text)")
    text: str


class BlockCard(BaseModel):
    """One block of a law an item changes (or acts in accordance with)."""

    block_id: str | None = None
    title: str
    status: Literal["consolidated", "pending_consolidation", "not_found"]
    before: str | None = Field(None, description="text in force before the item")
    after: str | None = Field(None, description="text the item introduced")
    before_version: str | None = Field(None, description="id_norma of the before version")
    after_version: str | None = None
    after_from_item: bool = Field(False, description="the new wording is the item's own "
                                  "quoted text (not yet in the consolidated law)")
    diff: list[DiffPart] = Field(default_factory=list)


class AmendmentCard(BaseModel):
    """What an item does to another law, block by block (``boeflow links``)."""

    relation: str = Field(description="modifica | añade | suprime | deroga | corrige | "
                          "de_conformidad | cita")
    target: str
    target_title: str | None = None
    url: str = Field(description="the consolidated law: its ELI, else the BOE's page")
    text: str = Field("", description="the reference as the item's analysis words it")
    in_consolidated: bool = Field(True, description="the law is in the consolidated "
                                  "legislation API")
    collapsed: bool = Field(description="shown folded (acting in accordance with a block)")
    blocks: list[BlockCard] = Field(default_factory=list)


class Edit(BaseModel):
    """A reviewer's correction of a summary text, re-checked automatically."""

    language: Literal["es", "va"]
    original: str
    resumen: str
    by: str | None
    at: datetime | None
    checks_passed: bool
    check_reasons: list[str] = Field(default_factory=list)


class Anchor(BaseModel):
    """A span of the parsed source: ``quote == text[start:end]`` (no offsets for metadata)."""

    path: str
    start: int | None = None
    end: int | None = None
    quote: str


class FlaggedFact(BaseModel):
    """A fact of the summary the review could not find in the source, with the closest
    candidate span (``source``), so the reviewer checks it without reading the document."""

    kind: str
    value: str
    supported: bool = False
    source: Anchor | None = None


class CardDate(BaseModel):
    text: str
    date: dt.date | None = None
    reason: str | None = Field(None, description="why there is no date")
    source: Anchor | None = None


class CardDeadline(CardDate):
    quantity: int | None = None
    unit: str | None = None
    computation: str | None = None


class FactsCard(BaseModel):
    """Entry into force and deadlines of an item (``boeflow facts``), built without a model."""

    entrada_en_vigor: CardDate | None = None
    plazos: list[CardDeadline] = Field(default_factory=list)
    importes: int = Field(0, description="how many amounts the document states")


class ItemReview(BaseModel):
    status: ReviewState
    reasons: list[str] = Field(default_factory=list, description="automatic review reasons")
    facts: list[FlaggedFact] = Field(default_factory=list,
                                     description="flagged facts with their source spans")
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
    url_pdf: BoeUrl | None = None
    url_html: BoeUrl | None = Field(None, description="built from the BOE id")
    url_xml: BoeUrl | None = Field(None, description="built from the BOE id")
    eli: EliUrl | None = None
    pages: str | None = None
    links: list[Link] = Field(default_factory=list)
    amendments: list[AmendmentCard] = Field(default_factory=list)
    review: ItemReview
    card: FactsCard | None = Field(None, description="entry into force and deadlines")
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
    reason: Annotated[str, AfterValidator(defang_urls)] = Field(
        description="why; any URL in it defanged (https[:]//evil[.]example) so it cannot "
        "become a link")
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


class Selection(BaseModel):
    """The digest covers part of the day's sumario: the run was limited by sections or
    ``max_items``. Absent (null) when the digest holds every item the sumario lists."""

    sections: list[str] = Field(description="labels of the sections with items in the "
                                "digest, e.g. ['I', 'III']")
    items: int = Field(description="items of the sumario in the digest (before the "
                       "reviewer's exclusions)")
    listed: int = Field(description="items the day's sumario lists")
    label: str = Field(description="e.g. 'selección: secciones I y III; 12 de 219 "
                       "elementos'")


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
    selection: Selection | None = Field(None, description="set when the digest is partial "
                                        "(a run limited by sections or max_items)")


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
