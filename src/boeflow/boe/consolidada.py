"""Consolidated legislation as a source: the BOE's ``legislacion-consolidada`` API.

``/datosabiertos/api/legislacion-consolidada/id/{id}`` with ``/metadatos``, ``/analisis``,
``/texto/indice``, ``/texto`` and ``/texto/bloque/{id_bloque}``. Requests go through the
daily fetch's :class:`~boeflow.boe.http.BoeClient` (one rate limiter, User-Agent, deadlines,
retries, size caps, same-origin redirects, well-formedness) and every body is checked to be
the law asked for before it is cached in the raw store::

    consolidada/<BOE id>/<fecha_actualizacion>/metadatos.xml | analisis.xml | indice.xml
    consolidada/<BOE id>/<fecha_actualizacion>/texto.xml

The metadatos (one small request) say when the consolidated text last changed; a law's text
is fetched once per such change, not once per item that cites it. A law the API does not
have is :class:`LawNotFound`; a missing block is ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from boeflow.boe.http import BoeClient, NotFound
from boeflow.boe.store import RawStore
from boeflow.core.errors import BoeflowError
from boeflow.core.ids import require_boe_id
from boeflow.core.textnorm import fold
from boeflow.core.xmlsafe import parse_xml_bytes

API = "/datosabiertos/api/legislacion-consolidada/id/{boe_id}"
_BLOCK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}")
STORE_PREFIX = "consolidada"


class LawNotFound(BoeflowError):
    """The consolidated-legislation API has no such law (it consolidates only some norms)."""


class ConsolidadaError(BoeflowError):
    """An answer that is not the law asked for, or not the API's format."""


@dataclass(frozen=True)
class Version:
    id_norma: str
    fecha_publicacion: date | None
    fecha_vigencia: date | None
    text: str

    def as_dict(self) -> dict[str, str | None]:
        return {"id_norma": self.id_norma,
                "fecha_vigencia": self.fecha_vigencia.isoformat() if self.fecha_vigencia
                else None}


@dataclass
class Block:
    id: str
    tipo: str
    titulo: str
    versions: list[Version] = field(default_factory=list)

    def version_by(self, id_norma: str) -> Version | None:
        return next((v for v in self.versions if v.id_norma == id_norma), None)

    def in_force(self, on: date, *, excluding: str | None = None) -> Version | None:
        """The version in force on ``on`` (the latest whose vigencia began by then)."""
        candidates = [v for v in self.versions if v.id_norma != excluding
                      and (v.fecha_vigencia or v.fecha_publicacion or date.min) <= on]
        return candidates[-1] if candidates else None


@dataclass
class Law:
    boe_id: str
    title: str
    rango: str | None
    number: str | None
    eli: str | None
    updated: str  # fecha_actualizacion, e.g. 20260609T110103Z
    url: str | None = None
    blocks: list[Block] = field(default_factory=list)

    def find_block(self, title: str) -> Block | None:
        """The block titled ``title`` ("Artículo 57", "Disposición adicional novena")."""
        wanted = title_key(title)
        return next((b for b in self.blocks if title_key(b.titulo) == wanted), None)


def title_key(title: str) -> str:
    return " ".join(re.sub(r"[.\s]+", " ", fold(title)).split())


def _day(value: str | None) -> date | None:
    if not value or not re.fullmatch(r"\d{8}", value.strip()):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def _version_text(node: etree._Element) -> str:
    """A version's text, paragraph per line; editorial notes (``nota_pie``) left out."""
    lines: list[str] = []
    for p in node.iter("p"):
        if "nota_pie" in (p.get("class") or ""):
            continue
        text = " ".join("".join(p.itertext()).split())
        if text:
            lines.append(text)
    return "\n".join(lines)


def _check_status(root: etree._Element, what: str) -> None:
    code = (root.findtext("status/code") or "").strip()
    if root.tag != "response" or code != "200":
        if code == "404":
            raise LawNotFound(f"{what}: not in the consolidated legislation API")
        raise ConsolidadaError(f"{what}: not a legislación consolidada API answer "
                               f"(status {code or 'missing'})")


def parse_metadatos(content: bytes, boe_id: str) -> Law:
    root = parse_xml_bytes(content)
    _check_status(root, boe_id)
    meta = root.find("data/metadatos")
    if meta is None:
        raise ConsolidadaError(f"{boe_id}: metadatos missing from the answer")
    found = (meta.findtext("identificador") or "").strip()
    if found != boe_id:
        raise ConsolidadaError(f"asked for the metadatos of {boe_id}, got {found or 'none'}")
    return Law(boe_id=boe_id, title=(meta.findtext("titulo") or "").strip(),
               rango=(meta.findtext("rango") or "").strip() or None,
               number=(meta.findtext("numero_oficial") or "").strip() or None,
               eli=(meta.findtext("url_eli") or "").strip() or None,
               updated=(meta.findtext("fecha_actualizacion") or "").strip(),
               url=(meta.findtext("url_html_consolidada") or "").strip() or None)


def parse_block(node: etree._Element) -> Block:
    block = Block(id=node.get("id", ""), tipo=node.get("tipo", ""),
                  titulo=" ".join(node.get("titulo", "").split()))  # NBSPs occur
    for version in node.iterfind("version"):
        block.versions.append(Version(
            id_norma=version.get("id_norma", ""),
            fecha_publicacion=_day(version.get("fecha_publicacion")),
            fecha_vigencia=_day(version.get("fecha_vigencia")),
            text=_version_text(version)))
    block.versions.sort(key=lambda v: (v.fecha_vigencia or v.fecha_publicacion or date.min))
    return block


def parse_texto(content: bytes, boe_id: str) -> list[Block]:
    root = parse_xml_bytes(content)
    _check_status(root, boe_id)
    texto = root.find("data/texto")
    if texto is None:
        raise ConsolidadaError(f"{boe_id}: texto missing from the answer")
    blocks = [parse_block(node) for node in texto.iterfind("bloque")]
    # Identity: the original version of the law's own blocks is the law itself.
    norms = {v.id_norma for b in blocks for v in b.versions}
    if blocks and boe_id not in norms:
        raise ConsolidadaError(f"the texto served for {boe_id} holds no version of {boe_id}")
    return blocks


class ConsolidadaClient:
    """Fetches (and caches in the raw store) consolidated laws; one per task, over an open
    :class:`BoeClient`."""

    def __init__(self, client: BoeClient, store: RawStore | None = None) -> None:
        self.client = client
        self.store = store
        self._laws: dict[str, Law] = {}

    def _url(self, boe_id: str, suffix: str) -> str:
        return API.format(boe_id=require_boe_id(boe_id, "law")) + suffix

    def _get(self, boe_id: str, suffix: str) -> bytes:
        """The body; LawNotFound on 404. Other fetch failures (network, 5xx after the
        retries) propagate as FetchError: they say nothing about the law."""
        try:
            return self.client.fetch(self._url(boe_id, suffix), "xml").content
        except NotFound:
            raise LawNotFound(f"{boe_id}: not in the consolidated legislation API") from None

    def _cached(self, boe_id: str, updated: str, name: str, suffix: str) -> bytes:
        key = None
        if self.store is not None and re.fullmatch(r"[0-9TZ]{8,20}", updated):
            key = f"{STORE_PREFIX}/{boe_id}/{updated}/{name}.xml"
            if self.store.exists(key):
                return self.store.read(key)
        content = self._get(boe_id, suffix)
        if key is not None and self.store is not None:
            self.store.write_atomic(key, content)
        return content

    def metadatos(self, boe_id: str) -> Law:
        """The law's metadata (always asked for: it says when the text last changed)."""
        content = self._get(boe_id, "/metadatos")
        law = parse_metadatos(content, boe_id)
        if self.store is not None and re.fullmatch(r"[0-9TZ]{8,20}", law.updated):
            key = f"{STORE_PREFIX}/{boe_id}/{law.updated}/metadatos.xml"
            if not self.store.exists(key):
                self.store.write_atomic(key, content)
        return law

    def law(self, boe_id: str) -> Law:
        """The law with every block and version (cached per process and per update)."""
        if boe_id in self._laws:
            return self._laws[boe_id]
        law = self.metadatos(boe_id)
        law.blocks = parse_texto(self._cached(boe_id, law.updated, "texto", "/texto"), boe_id)
        self._laws[boe_id] = law
        return law

    def analisis(self, boe_id: str) -> bytes:
        law = self._laws.get(boe_id) or self.metadatos(boe_id)
        content = self._cached(boe_id, law.updated, "analisis", "/analisis")
        _check_status(parse_xml_bytes(content), boe_id)
        return content

    def indice(self, boe_id: str) -> list[tuple[str, str]]:
        """(block id, title) of every block, from ``/texto/indice``."""
        law = self._laws.get(boe_id) or self.metadatos(boe_id)
        root = parse_xml_bytes(self._cached(boe_id, law.updated, "indice", "/texto/indice"))
        _check_status(root, boe_id)
        return [((node.findtext("id") or "").strip(), " ".join((node.findtext("titulo") or "")
                                                                .split()))
                for node in root.iterfind("data/bloque")]

    def block(self, boe_id: str, block_id: str) -> Block | None:
        """One block with its versions (``/texto/bloque/{id}``); None when the law has no
        such block."""
        if not _BLOCK_ID.fullmatch(block_id):
            return None
        try:
            content = self._get(boe_id, f"/texto/bloque/{block_id}")
        except LawNotFound:
            self.metadatos(boe_id)  # LawNotFound again when the law itself is missing
            return None
        root = parse_xml_bytes(content)
        _check_status(root, boe_id)
        node = root.find("data/bloque")
        if node is None or node.get("id") != block_id:
            raise ConsolidadaError(f"asked for block {block_id} of {boe_id}, got "
                                   f"{node.get('id') if node is not None else 'none'}")
        return parse_block(node)
