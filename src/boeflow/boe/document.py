"""Metadata and references of a BOE item document (``diario_boe/xml.php?id=BOE-A|B-…``).

Shared by the source client (manifest links) and the parser (``boeflow parse``).
Both element orders of ``<metadatos>`` occur in real files, so fields are looked up by
name, never by position. ``url_pdf`` may be site-relative or absolute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from urllib.parse import urljoin

from lxml import etree

from boeflow.core.ids import BOE_ID as BOE_ID  # re-exported for older imports
from boeflow.core.site import BOE_ORIGIN, UnsafeUrl, check_boe_url

BOE_SITE = BOE_ORIGIN  # the one definition is boeflow.core.site
# How the warnings of links dropped while parsing begin (ParsedDocument.warnings): the digest
# lists them as incidencias of the item.
DROPPED_LINK_WARNINGS = ("ELI descartado:", "enlace PDF descartado:")

Direction = Literal["anterior", "posterior"]
Relation = Literal["corrige", "corregido_por", "modifica", "modificado_por", "deroga",
                   "derogado_por", "cita", "citado_por"]

# Words of <palabra> in <referencias> and the relation they express (uppercase prefix match).
_CORRECTION = ("CORRECCIÓN", "CORRIGE")
_REPEAL = ("DEROGA", "ANULA", "DEJA SIN EFECTO", "SUPRIME")
_MODIFY = ("MODIFICA", "AÑADE", "DA NUEVA REDACCIÓN", "AMPLÍA", "PRORROGA", "SUSPENDE",
           "DESARROLLA", "RECTIFICA", "CONVALIDA", "APLICA", "TRASPONE", "INCORPORA")


@dataclass(frozen=True)
class Reference:
    """A link from ``<analisis>/<referencias>`` to another BOE document."""

    direction: Direction
    target_id: str
    code: str
    word: str
    text: str
    relation: Relation

    def as_dict(self) -> dict[str, str]:
        return {"direction": self.direction, "target_id": self.target_id, "code": self.code,
                "word": self.word, "text": self.text, "relation": self.relation}


@dataclass
class DocumentMeta:
    id: str
    title: str
    rango: str | None
    department: str | None
    section: str | None
    published: date | None
    disposition_date: date | None
    official_number: str | None
    url_pdf: str | None
    url_xml: str
    url_html: str
    eli: str | None
    materias: list[str] = field(default_factory=list)
    alertas: list[str] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    # Links the document claims that are not https URLs of the BOE site: dropped, with why.
    dropped_links: list[str] = field(default_factory=list)

    @property
    def corrects(self) -> list[str]:
        return [r.target_id for r in self.references if r.relation == "corrige"]

    @property
    def modifies(self) -> list[str]:
        return [r.target_id for r in self.references if r.relation in ("modifica", "deroga")]


def _text(node: etree._Element | None) -> str:
    if node is None:
        return ""
    return " ".join("".join(node.itertext()).split())


def _child_text(parent: etree._Element | None, name: str) -> str | None:
    if parent is None:
        return None
    value = _text(parent.find(name))
    return value or None


def parse_boe_date(value: str | None) -> date | None:
    if not value:
        return None
    for fmt in ("%Y%m%d", "%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    return None


def absolute_url(url: str | None, base: str = BOE_SITE) -> str | None:
    """Resolve a site-relative BOE URL (``/boe/dias/…``) against ``base``."""
    if not url:
        return None
    return urljoin(base.rstrip("/") + "/", url)


def classify(direction: Direction, word: str) -> Relation:
    # Posterior references read "SE MODIFICA", "SE CORRIGE", ... (passive of the same verbs).
    upper = word.upper().removeprefix("SE ").strip()
    forward = direction == "anterior"
    if upper.startswith(_CORRECTION):
        return "corrige" if forward else "corregido_por"
    if upper.startswith(_REPEAL):
        return "deroga" if forward else "derogado_por"
    if upper.startswith(_MODIFY):
        return "modifica" if forward else "modificado_por"
    return "cita" if forward else "citado_por"


def extract_references(root: etree._Element) -> list[Reference]:
    refs: list[Reference] = []
    for direction, tag in (("anterior", "anterior"), ("posterior", "posterior")):
        for node in root.iterfind(f"analisis/referencias/{tag}es/{tag}"):
            target = node.get("referencia", "").strip()
            if not BOE_ID.fullmatch(target):
                continue
            word_node = node.find("palabra")
            word = _text(word_node)
            refs.append(Reference(
                direction=direction,  # type: ignore[arg-type]
                target_id=target,
                code=(word_node.get("codigo", "") if word_node is not None else ""),
                word=word,
                text=_text(node.find("texto")),
                relation=classify(direction, word),  # type: ignore[arg-type]
            ))
    return refs


def extract_eli(root: etree._Element, dropped: list[str] | None = None) -> str | None:
    """The document's ELI from ``<metadata-eli>``: the first ``rdf:about`` that is an ELI of
    the BOE site (``https://www.boe.es/eli/…``). Claims that mention ``/eli/`` but are not
    (``javascript:…//www.boe.es/eli/…``, another host) are never taken; each is appended to
    ``dropped`` with the reason."""
    eli = root.find("metadata-eli")
    if eli is None:
        return None
    refused: list[str] = []
    found = None
    for node in eli.iter():
        for key, value in node.attrib.items():
            if found is None and key.endswith("about") and "/eli/" in value:
                try:
                    found = check_boe_url(str(value), path_prefix="/eli/")
                except UnsafeUrl as exc:
                    refused.append(str(exc))
    if found is None:
        serialised = etree.tostring(eli, encoding="unicode")
        for match in re.finditer(r"https?://(?:www\.)?boe\.es/eli/[^\s\"'<>]+", serialised):
            try:
                found = check_boe_url(match.group(0), path_prefix="/eli/")
                break
            except UnsafeUrl as exc:
                refused.append(str(exc))
    if found is None and refused and dropped is not None:
        more = f" (y {len(refused) - 1} más)" if len(refused) > 1 else ""
        dropped.append(f"ELI descartado: {refused[0]}{more}")
    return found


def document_pdf_url(url: str | None, base: str = BOE_SITE,
                     dropped: list[str] | None = None) -> str | None:
    """A document's ``url_pdf`` (site-relative or absolute) as an https URL of the BOE site;
    None, with the reason appended to ``dropped``, for anything else."""
    resolved = absolute_url(url, base)
    if resolved is None:
        return None
    try:
        return check_boe_url(resolved)
    except UnsafeUrl as exc:
        if dropped is not None:
            dropped.append(f"enlace PDF descartado: {exc}")
        return None


def parse_document_meta(root: etree._Element, base_url: str = BOE_SITE) -> DocumentMeta:
    """Metadata of a ``<documento>`` element; raises ValueError if it is not a BOE document."""
    if root.tag != "documento":
        raise ValueError(f"not a BOE <documento> (root element <{root.tag}>)")
    meta = root.find("metadatos")
    doc_id = _child_text(meta, "identificador")
    if not doc_id:
        raise ValueError("BOE document without <metadatos>/<identificador>")
    dropped: list[str] = []
    section = _child_text(meta, "seccion")
    subsection = _child_text(meta, "subseccion")
    if section and subsection and not section.endswith(subsection):
        section = f"{section}{subsection}"
    return DocumentMeta(
        id=doc_id,
        title=_child_text(meta, "titulo") or "",
        rango=_child_text(meta, "rango"),
        department=_child_text(meta, "departamento"),
        section=section,
        published=parse_boe_date(_child_text(meta, "fecha_publicacion")),
        disposition_date=parse_boe_date(_child_text(meta, "fecha_disposicion")),
        official_number=_child_text(meta, "numero_oficial"),
        url_pdf=document_pdf_url(_child_text(meta, "url_pdf"), base_url, dropped),
        url_xml=f"{base_url.rstrip('/')}/diario_boe/xml.php?id={doc_id}",
        url_html=f"{base_url.rstrip('/')}/diario_boe/txt.php?id={doc_id}",
        eli=extract_eli(root, dropped),
        materias=[_text(m) for m in root.iterfind("analisis/materias/materia") if _text(m)],
        alertas=[_text(a) for a in root.iterfind("analisis/alertas/alerta") if _text(a)],
        references=extract_references(root),
        dropped_links=dropped,
    )
