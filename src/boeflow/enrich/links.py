"""What an item changes or cites in other laws, block by block, before and after.

For each reference of an item's ``<analisis>`` (MODIFICA, AÑADE, SUPRIME, DEROGA, CORRIGE,
DE CONFORMIDAD, CITA…) the target law is read from the consolidated-legislation API
(:mod:`boeflow.boe.consolidada`) and the blocks the reference names ("el art. 57",
"los arts. 3, 3 bis, 5 y 11.2", "la disposición adicional 9", "el anexo II") are resolved:

* ``before``: the version in force the day before the item's publication (for a citation,
  the version in force on the day of publication);
* ``after``: the version this item introduced, when the consolidated text already has it
  (``status: consolidated``); when it does not yet (consolidation lags the daily BOE), the
  new wording quoted by the item itself («…» after "Se modifica el artículo 57 de la
  Ley 7/1985…"), marked ``"source": "amending_item"`` (``status: pending_consolidation``);
* ``status: not_found`` when the law or the block is not in the API.

The result is plain data (:func:`links_for`), the JSON of ``boeflow links``, stored on the
``boe-documents`` record and shown as cards in the digest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from lxml import etree

from boeflow.boe.citations import BY_ID
from boeflow.boe.consolidada import (
    Block,
    ConsolidadaClient,
    ConsolidadaError,
    Law,
    LawNotFound,
    Version,
    title_key,
)
from boeflow.boe.document import Reference, parse_document_meta
from boeflow.boe.store import RawStore
from boeflow.core.errors import BoeflowError
from boeflow.core.settings import Settings
from boeflow.core.textnorm import fold
from boeflow.index.mapping import IndexNames

log = logging.getLogger(__name__)

AMENDING = ("modifica", "añade", "suprime", "deroga", "corrige")
CITING = ("de_conformidad", "cita")
# Relations whose blocks get a before/after card; the others a collapsed "in force" card.
_WORDS: tuple[tuple[str, str], ...] = (
    ("CORRECCIÓN", "corrige"), ("CORRIGE", "corrige"), ("AÑADE", "añade"),
    ("SUPRIME", "suprime"), ("DEROGA", "deroga"), ("DEJA SIN EFECTO", "deroga"),
    ("DA NUEVA REDACCIÓN", "modifica"), ("MODIFICA", "modifica"),
    ("DE CONFORMIDAD", "de_conformidad"), ("DICTA DE CONFORMIDAD", "de_conformidad"),
)
ORDINALS = ("primera", "segunda", "tercera", "cuarta", "quinta", "sexta", "séptima",
            "octava", "novena", "décima", "undécima", "duodécima", "decimotercera",
            "decimocuarta", "decimoquinta", "decimosexta", "decimoséptima", "decimoctava",
            "decimonovena")
TENS = ("", "", "vigésima", "trigésima", "cuadragésima", "quincuagésima", "sexagésima",
        "septuagésima", "octogésima", "nonagésima")
_SUFFIX = r"(?:\s+(?:bis|ter|quater|quinquies|sexies|septies|octies))?"
_ITEM = rf"\d+{_SUFFIX}(?:\.\d+)*(?:\.?\s?[a-zñ]\))?"
ART_RE = re.compile(rf"\b(?:arts?|artículos?)\.?\s+(?P<list>{_ITEM}(?:\s*(?:,|y|e)\s*{_ITEM})*)",
                    re.I)
DISP_RE = re.compile(r"\bdisposici(?:ón|on|ones)\s+(?P<kind>adicional|transitoria|final|"
                     r"derogatoria)(?:es)?\s+(?P<list>(?:\d+|[a-záéíóúñ]+)" + _SUFFIX +
                     r"(?:\s*(?:,|y)\s*(?:\d+|[a-záéíóúñ]+)" + _SUFFIX + r")*)", re.I)
ANEXO_RE = re.compile(r"\banexos?\s+(?P<list>[IVXLC]+|\d+)\b")
_NOT_ORDINAL = frozenset(("de", "del", "la", "a", "al", "y", "e", "en", "por", "con"))


def relation_of(reference: Reference) -> str:
    upper = reference.word.upper().removeprefix("SE ").strip()
    for prefix, relation in _WORDS:
        if upper.startswith(prefix):
            return relation
    return "cita"


def ordinal(n: int) -> str:
    """The feminine ordinal the BOE titles dispositions with (9 → "novena")."""
    if 1 <= n <= len(ORDINALS):
        return ORDINALS[n - 1]
    tens, units = divmod(n, 10)
    if 2 <= tens <= 9:
        return TENS[tens] + (f" {ORDINALS[units - 1]}" if units else "")
    return str(n)


def block_titles(text: str) -> list[str]:
    """Titles of the blocks a reference names, as the consolidated text titles them."""
    titles: list[str] = []
    for match in ART_RE.finditer(text):
        for item in re.split(r"\s*(?:,|\by\b|\be\b)\s*", match["list"]):
            found = re.match(rf"(\d+{_SUFFIX})", item.strip())
            if found:
                titles.append("Artículo " + " ".join(found.group(1).split()))
    for match in DISP_RE.finditer(text):
        kind = match["kind"].lower()
        for item in re.split(r"\s*(?:,|\by\b)\s*", match["list"]):
            item = item.strip()
            if not item or item.lower() in _NOT_ORDINAL:
                continue
            head, _, suffix = item.partition(" ")
            name = ordinal(int(head)) if head.isdigit() else head.lower()
            if kind == "derogatoria" and not head.isdigit() and name not in ("única",):
                continue
            titles.append(f"Disposición {kind} {name}{' ' + suffix if suffix else ''}")
    for match in ANEXO_RE.finditer(text):
        titles.append(f"Anexo {match['list']}")
    return list(dict.fromkeys(titles))


@dataclass(frozen=True)
class Quote:
    """A «…» passage of the amending item and the words that introduce it."""

    context: str
    text: str


def quoted_passages(root: etree._Element) -> list[Quote]:
    quotes: list[Quote] = []
    texto = root.find("texto")
    if texto is None:
        return quotes
    for quote in texto.iter("blockquote"):
        text = "\n".join(" ".join("".join(p.itertext()).split()) for p in quote.iter("p"))
        context_parts: list[str] = []
        sibling = quote.getprevious()
        while sibling is not None and len(context_parts) < 3:
            if sibling.tag == "blockquote":
                break
            context_parts.insert(0, " ".join("".join(sibling.itertext()).split()))
            if "articulo" in (sibling.get("class") or ""):
                break
            sibling = sibling.getprevious()
        quotes.append(Quote(" ".join(context_parts), text.strip()))
    return quotes


def _new_wording(quotes: list[Quote], title: str, law: Law | None,
                 number: str | None) -> str | None:
    """The item's own quoted text for block ``title`` of the law (None when no quote can be
    matched): a quote that starts with the block's title, or one introduced by words naming
    the block ("…en el artículo 57 de la Ley 7/1985…")."""
    key = title_key(title)
    spoken = fold(title).replace("articulo ", "artículo ").lower()
    wanted_number = number or (law.number if law else None)
    best: str | None = None
    for quote in quotes:
        context = fold(quote.context)
        if wanted_number and wanted_number not in context:
            continue
        body = title_key(quote.text.lstrip("«"))
        names_block = re.search(re.escape(fold(spoken)) + r"(?![\d])", context) is not None
        if body.startswith(key) and (len(body) == len(key) or not body[len(key)].isdigit()):
            return _unquote(quote.text)
        if names_block and best is None:
            best = _unquote(quote.text)
    return best


def _unquote(text: str) -> str:
    text = text.strip()
    if text.startswith("«"):
        text = text[1:]
    return re.sub(r"»\s*\.?\s*$", "", text).strip()


def _version(version: Version | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {"text": version.text, "version": version.as_dict()}


def _block_entry(title: str, block: Block | None, relation: str, item_id: str,
                 published: date, quotes: list[Quote], law: Law | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"block_id": block.id if block else None,
                             "title": block.titulo if block else title,
                             "before": None, "after": None, "status": "not_found"}
    number = law.number if law else None
    if relation in CITING:
        if block is not None:
            entry["before"] = _version(block.in_force(published))
            entry["status"] = "consolidated"
        return entry
    if block is not None:
        entry["before"] = _version(block.in_force(published - timedelta(days=1),
                                                  excluding=item_id))
        own = block.version_by(item_id)
        if own is not None:
            entry["after"] = _version(own)
            entry["status"] = "consolidated"
            return entry
    if relation in ("suprime", "deroga") and block is not None:
        entry["status"] = "pending_consolidation"
        return entry
    wording = _new_wording(quotes, title, law, number)
    if wording is not None:
        entry["after"] = {"text": wording, "version": {"id_norma": item_id,
                                                       "fecha_vigencia": None},
                          "source": "amending_item"}
    # A block the consolidated law has (or will have: a quoted new block) awaits
    # consolidation; a law the API does not have stays "not_found", quote or not.
    if law is not None and (block is not None or wording is not None):
        entry["status"] = "pending_consolidation"
    return entry


def links_for(root: etree._Element, consolidada: ConsolidadaClient) -> dict[str, Any]:
    """``{"boe_id", "references": [{"relation", "target", "target_title", "text",
    "blocks": [...]}]}`` for one item document (its parsed ``<documento>``)."""
    meta = parse_document_meta(root)
    published = meta.published or meta.disposition_date or date.today()
    quotes = quoted_passages(root)
    references: list[dict[str, Any]] = []
    for ref in meta.references:
        if ref.direction != "anterior":
            continue
        relation = relation_of(ref)
        law: Law | None = None
        error: str | None = None
        try:
            law = consolidada.law(ref.target_id)
        except LawNotFound:
            error = "not in the consolidated legislation API"
        except ConsolidadaError as exc:
            error = str(exc)
        titles = block_titles(ref.text)
        blocks: list[dict[str, Any]] = []
        if law is not None and not titles and relation in AMENDING:
            # "determinados preceptos": every block this item gave a version.
            titles = [b.titulo for b in law.blocks if b.version_by(meta.id)]
        for title in titles:
            block = law.find_block(title) if law else None
            blocks.append(_block_entry(title, block, relation, meta.id, published, quotes,
                                       law))
        known = BY_ID.get(ref.target_id)
        entry: dict[str, Any] = {
            "relation": relation, "target": ref.target_id,
            "target_title": law.title if law else (known.title if known else None),
            "text": ref.text, "blocks": blocks,
            "target_eli": law.eli if law else None,
            "target_url": (law.url if law and law.url else
                           f"https://www.boe.es/buscar/act.php?id={ref.target_id}"),
        }
        if error:
            entry["error"] = error
        references.append(entry)
    return {"boe_id": meta.id, "references": references}


def _needs_links(record: dict[str, Any]) -> bool:
    """An item that acts on other norms and whose links are missing or still pending."""
    if not any(ref.get("direction") == "anterior" for ref in record.get("references") or []):
        return False
    stored = record.get("legal_links")
    if not stored:
        return True
    return any(block.get("status") == "pending_consolidation"
               for ref in stored.get("references", []) for block in ref.get("blocks", []))


def refresh_links(day: date, settings: Settings, store: RawStore, es: Elasticsearch,
                  names: IndexNames, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Compute the links of the day's items that act on other norms (from their fetched
    XML in the raw store), store them on their ``boe-documents`` records (``legal_links``)
    and in ``records``; items already linked and fully consolidated are left alone. A
    failure is recorded per item, never raised: the digest is built without that card."""
    from boeflow.boe.http import BoeClient, ClientConfig, FetchError
    from boeflow.boe.store import day_prefix
    from boeflow.core.xmlsafe import parse_xml_bytes

    wanted = [boe_id for boe_id, record in records.items() if _needs_links(record)]
    done: list[str] = []
    failed: dict[str, str] = {}
    if not wanted:
        return {"linked": done, "failed": failed}
    with BoeClient(ClientConfig.from_settings(settings)) as client:
        consolidada = ConsolidadaClient(client, store)
        for n, boe_id in enumerate(wanted):
            key = f"{day_prefix(day)}/items/{boe_id}.xml"
            try:
                if not store.exists(key):
                    failed[boe_id] = "no XML of the item in the raw store"
                    continue
                result = links_for(parse_xml_bytes(store.read(key)), consolidada)
                es.update(index=names.documents, id=boe_id, doc={"legal_links": result})
            except FetchError as exc:
                # The API is unreachable: nothing is stored (the next build retries) and
                # the other items are not tried (each would wait out the same retries).
                reason = "consolidated legislation API unreachable: " + " ".join(
                    str(exc).split())[:250]
                failed.update({other: reason for other in wanted[n:]})
                log.warning("links of %s: %s", ", ".join(wanted[n:]), reason)
                break
            except (BoeflowError, ValueError, ApiError, TransportError) as exc:
                failed[boe_id] = " ".join(str(exc).split())[:300]
                log.warning("links of %s: %s", boe_id, failed[boe_id])
                continue
            records[boe_id]["legal_links"] = result
            done.append(boe_id)
    return {"linked": done, "failed": failed}
