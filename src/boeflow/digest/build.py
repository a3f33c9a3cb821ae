"""Assemble the digest of one publication day from the day's manifest (the sumario's order,
titles, links and fetch errors) and its enriched ``boe-documents`` records.

Pure functions of their inputs: ``boeflow.digest.collect`` gathers the inputs from the raw
store, Elasticsearch and PostgreSQL; tests feed recorded days directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from boeflow.boe.document import DROPPED_LINK_WARNINGS
from boeflow.boe.manifest import DayManifest, ItemRecord
from boeflow.core.ids import is_boe_id
from boeflow.core.site import BOE_ORIGIN, UnsafeUrl, check_boe_url, item_html_url, item_xml_url
from boeflow.digest.amendments import cards
from boeflow.digest.model import (
    COMPACT_SECTIONS,
    SECTION_ORDER,
    WATERMARK,
    CardDate,
    CardDeadline,
    Decision,
    Department,
    Digest,
    Edit,
    Excluded,
    FactsCard,
    FlaggedFact,
    Header,
    Incidencia,
    Item,
    ItemReview,
    Link,
    ReviewState,
    Section,
    SectionCount,
    Selection,
    Stage,
    Summary,
    WatchlistResult,
)

SHOWN_RELATIONS = ("corrige", "corregido_por", "modifica", "modificado_por", "deroga",
                   "derogado_por")
_INVERSE = {"corrige": "corregido_por", "modifica": "modificado_por", "deroga": "derogado_por"}
_SUMMARY_FIELDS = tuple(Summary.model_fields)


@dataclass
class DayInputs:
    """What the digest of ``day`` is made of."""

    day: date
    manifest: DayManifest | None
    # boe-documents sources by BOE id
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    # index/enrich errors by BOE id
    failures: dict[str, tuple[Stage, str]] = field(default_factory=dict)
    site_url: str = BOE_ORIGIN
    # items the day's sumario lists, by section code (None: unknown); more than the
    # manifest holds means the run was limited by sections or max_items
    listed: dict[str, int] | None = None
    # ``boeflow facts`` cards by BOE id (every item with a document)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Valencian of the day's titles, department and section names (boeflow.enrich.titles)
    titles_va: dict[str, str] = field(default_factory=dict)


@dataclass
class ReviewInput:
    """The reviewer's answer (from the Airflow approval form or the CLI)."""

    decision: Literal["approved", "rejected", "timed_out", "without_review"]
    reviewer: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    excluded: list[str] = field(default_factory=list)
    # BOE id (or 'BOE id:va') → corrected resumen
    edits: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # BOE id → note


# (boe_id, language, corrected summary, source text) → (passed, reasons)
EditChecker = Callable[[str, str, Summary], tuple[bool, list[str]]]


def summary_from(value: Any) -> Summary | None:
    """A stored summary: the structured dict, or (before full Valencian summaries) a plain
    string, taken as the resumen alone."""
    if isinstance(value, str):
        return Summary(resumen=value) if value.strip() else None
    if isinstance(value, Mapping) and str(value.get("resumen") or "").strip():
        known = {k: value[k] for k in _SUMMARY_FIELDS if value.get(k) is not None}
        return Summary.model_validate(known)
    return None


def item_url(site_url: str, boe_id: str) -> str:
    """The BOE page of an item, built from the BOE origin and its validated id."""
    return item_html_url(boe_id, site_url)


def _links(item: ItemRecord, record: Mapping[str, Any], site_url: str) -> list[Link]:
    links: list[Link] = []
    seen: set[tuple[str, str]] = set()

    def add(relation: str, target: str, text: str) -> None:
        if relation in SHOWN_RELATIONS and is_boe_id(target) and (relation, target) not in seen:
            seen.add((relation, target))
            links.append(Link(relation=relation, target_id=target, text=text,
                              url=item_url(site_url, target)))

    references = record.get("references") or [r.model_dump() for r in item.references]
    for ref in references:
        add(str(ref.get("relation")), str(ref.get("target_id")), str(ref.get("text") or ""))
    for target in item.corrects:
        add("corrige", target, "")
    for target in item.modifies:
        add("modifica", target, "")
    for back in record.get("linked_from") or []:
        relation = _INVERSE.get(str(back.get("relation")), "")
        add(relation, str(back.get("source_id")), str(back.get("source_title") or ""))
    order = {r: n for n, r in enumerate(SHOWN_RELATIONS)}
    return sorted(links, key=lambda link: order[link.relation])


STALE_REASON = ("el texto del documento ha cambiado desde que se resumió: el resumen se "
                "regenerará en el próximo enriquecimiento")


def _review(record: Mapping[str, Any] | None, has_summary: bool) -> ItemReview:
    raw = (record or {}).get("review_status")
    status: ReviewState = raw if raw in ("auto_checked", "needs_attention", "failed") \
        else "not_enriched"
    if status == "auto_checked" and not has_summary:
        status = "not_enriched"
    reasons = list((record or {}).get("review_reasons") or [])
    if (record or {}).get("enrichment_stale") and status != "not_enriched":
        # The text was re-indexed with new content after this summary was made.
        status = "needs_attention"
        reasons.insert(0, STALE_REASON)
    facts = [FlaggedFact.model_validate(f) for f in (record or {}).get("review_facts") or []
             if isinstance(f, dict) and not f.get("supported")]
    return ItemReview(status=status, reasons=reasons, facts=facts[:MAX_FLAGGED_FACTS])


MAX_FLAGGED_FACTS = 20


def card_from(card: Mapping[str, Any] | None) -> FactsCard | None:
    """The digest's view of a ``boeflow facts`` card (None when the item has none)."""
    if not card:
        return None
    plazos = [CardDeadline.model_validate(p) for p in card.get("plazos") or []]
    force = card.get("entrada_en_vigor")
    return FactsCard(entrada_en_vigor=CardDate.model_validate(force) if force else None,
                     plazos=plazos, importes=len(card.get("importes") or []))


@dataclass
class _Urls:
    """An item's links to the BOE, and why any the inputs offered was dropped."""

    pdf: str | None = None
    html: str | None = None
    xml: str | None = None
    eli: str | None = None
    dropped: list[Incidencia] = field(default_factory=list)


def _item_urls(entry: ItemRecord, record: Mapping[str, Any], site_url: str) -> _Urls:
    """HTML and XML links built from the BOE origin and the validated id; the PDF and the
    ELI (they hold the date and the rango) validated to https on the BOE hosts. Whatever is
    refused is an incidencia of the item (``fetch``: listed so by the sumario; ``parse``:
    claimed so by the document)."""
    urls = _Urls()

    def drop(stage: Stage, what: str, reason: str) -> None:
        urls.dropped.append(Incidencia(boe_id=entry.id, stage=stage, title=entry.title,
                                       reason=f"enlace {what} descartado: {reason}"))

    def valid(stage: Stage, what: str, value: Any, prefix: str = "/") -> str | None:
        if value in (None, ""):
            return None
        try:
            return check_boe_url(str(value), path_prefix=prefix)
        except UnsafeUrl as exc:
            drop(stage, what, str(exc))
            return None

    if is_boe_id(entry.id):
        urls.html, urls.xml = item_html_url(entry.id, site_url), item_xml_url(entry.id, site_url)
    # What the sumario listed is checked even where the link is built from the id: a hostile
    # value is worth a line in the incidencias.
    valid("fetch", "HTML", entry.url_html)
    valid("fetch", "XML", entry.url_xml)
    urls.pdf = valid("fetch", "PDF", entry.url_pdf)
    from_document = valid("parse", "PDF", record.get("url_pdf"))
    urls.pdf = urls.pdf or from_document
    urls.eli = valid("parse", "ELI", record.get("eli"), "/eli/")
    for warning in record.get("parse_warnings") or []:
        if str(warning).startswith(DROPPED_LINK_WARNINGS):
            urls.dropped.append(Incidencia(boe_id=entry.id, stage="parse", title=entry.title,
                                           reason=str(warning)))
    return urls


def _item(entry: ItemRecord, record: Mapping[str, Any] | None, site_url: str,
          smoke: bool, urls: _Urls, card: Mapping[str, Any] | None = None,
          titles_va: Mapping[str, str] | None = None) -> Item:
    record = record or {}
    va_source = (record.get("enrichment") or {}).get("va_source")
    summary_es = summary_from(record.get("summary"))
    pages = None
    if entry.first_page is not None:
        pages = (str(entry.first_page) if entry.last_page in (None, entry.first_page)
                 else f"{entry.first_page}-{entry.last_page}")
    amendments = cards(record.get("legal_links"))
    return Item(
        boe_id=entry.id, rango=record.get("rango") or entry.rango, epigrafe=entry.epigrafe,
        title_es=entry.title or str(record.get("title") or ""),
        title_va=record.get("title_va") or (titles_va or {}).get(entry.title) or None,
        va_source=va_source if va_source in ("apertium", "model", "apertium_reference")
        else None,
        summary_es=summary_es, summary_va=summary_from(record.get("summary_va")),
        url_pdf=urls.pdf, url_html=urls.html, url_xml=urls.xml, eli=urls.eli, pages=pages,
        links=_links(entry, record, site_url), amendments=amendments,
        review=_review(record or None, bool(summary_es)), card=card_from(card),
        compact=(entry.section in COMPACT_SECTIONS or summary_es is None) and not amendments,
        smoke=bool(record.get("smoke", smoke)))


def _fetch_reason(entry: ItemRecord) -> str | None:
    if any(f.ok for f in entry.files.values()):
        return None
    return "; ".join(entry.errors) or "no descargado"


def _incidencias(inputs: DayInputs) -> list[Incidencia]:
    manifest = inputs.manifest
    if manifest is None:
        return [Incidencia(boe_id=None, stage="day",
                           reason="el día no se ha descargado (sin manifiesto)")]
    if manifest.status == "no_publication":
        return [Incidencia(boe_id=None, stage="day",
                           reason=f"no hay BOE publicado este día ({manifest.error or '404'})")]
    if manifest.status == "error":
        return [Incidencia(boe_id=None, stage="day", reason=manifest.error or "error")]
    out: list[Incidencia] = []
    for entry in manifest.items:
        fetch = _fetch_reason(entry)
        if fetch:
            out.append(Incidencia(boe_id=entry.id, stage="fetch", reason=fetch, title=entry.title,
                                  title_va=inputs.titles_va.get(entry.title)))
            continue
        record = inputs.records.get(entry.id)
        failure = inputs.failures.get(entry.id)
        if failure:
            out.append(Incidencia(boe_id=entry.id, stage=failure[0], reason=failure[1],
                                  title=entry.title, title_va=inputs.titles_va.get(entry.title)))
        elif record is None:
            out.append(Incidencia(boe_id=entry.id, stage="index", title=entry.title,
                                  title_va=inputs.titles_va.get(entry.title),
                                  reason="descargado pero no indexado"))
        elif record.get("review_status") == "failed":
            reasons = record.get("review_reasons") or ["resumen no generado"]
            out.append(Incidencia(boe_id=entry.id, stage="enrich", title=entry.title,
                                  title_va=inputs.titles_va.get(entry.title),
                                  reason="; ".join(str(r) for r in reasons[:3])))
    return out


def build_draft(inputs: DayInputs, watchlists: list[WatchlistResult] | None = None, *,
                smoke: bool = False, now: datetime | None = None) -> Digest:
    """The unreviewed digest of the day (status ``draft`` with the watermark, or
    ``no_publication``)."""
    manifest = inputs.manifest
    generated = now or datetime.now().astimezone()
    incidencias = _incidencias(inputs)
    if manifest is None or manifest.status != "published":
        digest = Digest(date=inputs.day, status="no_publication", generated_at=generated,
                        header=Header(date=inputs.day, items=0,
                                      incidencias=len(incidencias)),
                        incidencias=incidencias, smoke=smoke)
        digest.draft_hash = draft_hash(digest)
        return digest
    by_section: dict[str, Section] = {}
    depts: dict[tuple[str, str], Department] = {}
    labels = dict(SECTION_ORDER)
    for entry in manifest.items:
        section = by_section.setdefault(entry.section, Section(
            code=entry.section, label=labels.get(entry.section, entry.section),
            name=entry.section_name, name_va=inputs.titles_va.get(entry.section_name)))
        key = (entry.section, entry.department)
        dept = depts.get(key)
        if dept is None:
            dept = depts[key] = Department(name=entry.department, code=entry.department_code,
                                           name_va=inputs.titles_va.get(entry.department))
            section.departments.append(dept)
        record = inputs.records.get(entry.id)
        urls = _item_urls(entry, record or {}, inputs.site_url)
        incidencias.extend(urls.dropped)
        item = _item(entry, record, inputs.site_url, smoke, urls, inputs.cards.get(entry.id),
                     inputs.titles_va)
        (dept.compact if item.compact else dept.items).append(item)
    order = {code: n for n, (code, _) in enumerate(SECTION_ORDER)}
    sections = sorted(by_section.values(), key=lambda s: order.get(s.code, len(order)))
    items = [i for s in sections for d in s.departments for i in (*d.items, *d.compact)]
    position = {entry.id: n for n, entry in enumerate(manifest.items)}
    incidencias.sort(key=lambda n: position.get(n.boe_id or "", -1))
    header = Header(
        date=inputs.day,
        boe_numbers=manifest.sumario.sumario_ids if manifest.sumario else [],
        items=len(items),
        sections=[SectionCount(code=s.code, label=s.label, name=s.name, name_va=s.name_va,
                               items=s.count) for s in sections],
        summarised=sum(1 for i in items if i.summary_es is not None),
        needs_attention=sum(1 for i in items
                            if i.review.status in ("needs_attention", "failed")),
        incidencias=len(incidencias),
        selection=selection(inputs.listed, [s.code for s in sections], len(items)))
    digest = Digest(date=inputs.day, status="draft", watermark=WATERMARK, header=header,
                    watchlists=watchlists or [], sections=sections, incidencias=incidencias,
                    generated_at=generated, smoke=smoke)
    digest.draft_hash = draft_hash(digest)
    return digest


def _spanish_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} y {words[-1]}"


def selection(listed: Mapping[str, int] | None, sections: list[str],
              items: int) -> Selection | None:
    """What part of the day's sumario a digest of ``items`` items from ``sections`` covers;
    None when it is the whole day (or the sumario's size is unknown)."""
    total = sum(listed.values()) if listed else 0
    if not listed or items >= total:
        return None
    labels = dict(SECTION_ORDER)
    shown = [labels.get(code, code) for code in sections]
    where = ((f"sección {shown[0]}" if len(shown) == 1 else
              f"secciones {_spanish_list(shown)}") if shown else "ninguna sección")
    return Selection(sections=shown, items=items, listed=total,
                     label=f"selección: {where}; {items} de {total} elementos")


def draft_hash(digest: Digest) -> str:
    """Hash of what the reviewer judges: everything but timestamps, status and decision."""
    data = digest.model_dump(mode="json", exclude={"generated_at", "status", "watermark",
                                                   "version", "draft_hash", "decision"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def unknown_ids(digest: Digest, review: ReviewInput) -> list[str]:
    """BOE ids named in the review that are not items of the digest."""
    known = {i.boe_id for i in digest.all_items()}
    named = [*review.excluded, *(k.split(":")[0] for k in review.edits), *review.notes]
    return sorted({boe_id for boe_id in named if boe_id not in known})


def apply_review(draft: Digest, review: ReviewInput, checker: EditChecker) -> Digest:
    """The digest to publish: excluded items removed (and listed as excluded), corrected
    summaries replaced and re-checked by ``checker``, notes and the decision attached."""
    digest = draft.model_copy(deep=True)
    excluded = set(review.excluded)
    titles: dict[str, str] = {}
    for section in digest.sections:
        for dept in section.departments:
            full: list[Item] = []
            compact: list[Item] = []
            for item in (*dept.items, *dept.compact):
                if item.boe_id in excluded:
                    titles[item.boe_id] = item.title_es
                    continue
                _apply_edits(item, review, checker)
                if item.review.edits:
                    item.compact = False  # a corrected summary is shown in full
                (compact if item.compact else full).append(item)
            dept.items, dept.compact = full, compact
        section.departments = [d for d in section.departments if d.count]
    digest.sections = [s for s in digest.sections if s.count]
    digest.excluded = [Excluded(boe_id=b, title=titles[b]) for b in review.excluded
                       if b in titles]
    for watch in digest.watchlists:
        watch.matches = [m for m in watch.matches if m.boe_id not in excluded]
    edited = sorted({k.split(":")[0] for k in review.edits} - excluded)
    digest.decision = Decision(decision=review.decision, reviewer=review.reviewer,
                               decided_at=review.decided_at, note=review.note,
                               excluded=[e.boe_id for e in digest.excluded], edited=edited)
    items = digest.all_items()
    digest.header.items = len(items)
    digest.header.sections = [SectionCount(code=s.code, label=s.label, name=s.name,
                                           name_va=s.name_va, items=s.count)
                              for s in digest.sections]
    digest.header.summarised = sum(1 for i in items if i.summary_es is not None)
    digest.header.needs_attention = sum(1 for i in items if i.review.status in
                                        ("needs_attention", "failed"))
    digest.header.excluded = len(digest.excluded)
    digest.status = "published"
    digest.watermark = None
    return digest


def _apply_edits(item: Item, review: ReviewInput, checker: EditChecker) -> None:
    if item.boe_id in review.notes:
        item.review.note = review.notes[item.boe_id]
    for language in ("es", "va"):
        key = item.boe_id if language == "es" else f"{item.boe_id}:va"
        text = review.edits.get(key)
        if text is None or not text.strip():
            continue
        current = item.summary_es if language == "es" else item.summary_va
        corrected = (current.model_copy(update={"resumen": text.strip()}) if current
                     else Summary(resumen=text.strip()))
        passed, reasons = checker(item.boe_id, language, corrected)
        item.review.edits.append(Edit(
            language=language, original=current.resumen if current else "",
            resumen=corrected.resumen, by=review.reviewer, at=review.decided_at,
            checks_passed=passed, check_reasons=reasons))
        if language == "es":
            item.summary_es = corrected
        else:
            item.summary_va = corrected
