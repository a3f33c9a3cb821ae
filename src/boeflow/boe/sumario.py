"""The daily BOE sumario: one model for the open-data API (XML and JSON) and the legacy XML.

Formats (see samples/boe/SOURCES.md, "Format notes"):

* API ``/datosabiertos/api/boe/sumario/YYYYMMDD``: ``response/data/sumario`` → ``diario``
  (1..n, several when an extraordinary issue appears the same day) → ``seccion`` →
  ``departamento`` → optional ``epigrafe`` → ``item``.
* The same API as JSON: element text under ``texto``, one child is an object and several an
  array, and some nodes wrap their children in a ``texto`` object (section 5C).
* Legacy ``/diario_boe/xml.php?id=BOE-S-YYYYMMDD``: ``sumario/diario[@nbo]`` with site-relative
  URLs under ``urlPdf``/``urlHtm``/``urlXml``.

All URLs in the model are canonical absolute URLs on the BOE site; the HTTP client maps them
onto the configured base URL when it fetches them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from lxml import etree

from boeflow.boe.document import BOE_SITE, parse_boe_date
from boeflow.core.errors import BoeflowError
from boeflow.core.sections import in_sections
from boeflow.core.site import BOE_HOSTS as BOE_HOSTS  # the one definition; re-exported
from boeflow.core.xmlsafe import parse_xml_bytes

SumarioSource = Literal["api-xml", "api-json", "legacy"]


class SumarioFormatError(BoeflowError, ValueError):
    """The payload is not a sumario in any of the known formats."""


class NoPublication(BoeflowError):
    """The API answered with a status payload saying there is no BOE for that day."""

    def __init__(self, day: date | None, status_text: str) -> None:
        super().__init__(f"no BOE published on {day}: {status_text}" if day else status_text)
        self.status_text = status_text


@dataclass(frozen=True)
class SumarioItem:
    """One disposition or announcement listed in a sumario."""

    id: str
    title: str
    section: str
    section_name: str
    department: str
    department_code: str | None
    epigrafe: str | None
    diario: str
    control: str | None
    url_pdf: str | None
    pdf_size: int | None
    first_page: int | None
    last_page: int | None
    page_count: int | None
    url_html: str | None
    url_xml: str | None

    def url_for(self, representation: str) -> str | None:
        return {"xml": self.url_xml, "html": self.url_html, "pdf": self.url_pdf}[representation]


@dataclass(frozen=True)
class Diario:
    """One issue of the day (the ordinary one, possibly an extraordinary one too)."""

    number: str
    sumario_id: str | None
    url_pdf: str | None
    pdf_size: int | None


@dataclass
class Sumario:
    day: date | None
    source: SumarioSource
    diarios: list[Diario] = field(default_factory=list)
    items: list[SumarioItem] = field(default_factory=list)

    def select(self, sections: Iterable[str] | None) -> list[SumarioItem]:
        """Items of the chosen sections; ``2`` selects 2A and 2B, ``5`` selects 5A-5C."""
        return [item for item in self.items if in_sections(item.section, sections)]


# --- URLs ---------------------------------------------------------------------------------

def canonical_url(url: str | None) -> str | None:
    """Site-relative or absolute BOE URL → absolute URL on https://www.boe.es."""
    if not url or not url.strip():
        return None
    return urljoin(BOE_SITE + "/", url.strip())


def rebase_url(url: str, base_url: str) -> str:
    """Map a BOE URL (relative, or absolute on the BOE host) onto ``base_url``.

    Raises ValueError for URLs on any other host: we only follow what the BOE lists.
    """
    parts = urlsplit(url)
    if (parts.netloc and parts.netloc.lower() not in BOE_HOSTS) or \
            parts.scheme.lower() not in ("", "http", "https"):
        raise ValueError(f"refusing to follow a URL outside the BOE site: {url[:200]}")
    base = urlsplit(base_url.rstrip("/"))
    return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))


# --- helpers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Where:
    """Where an item hangs in the tree: the context every item inherits."""

    diario: str = ""
    section: str = ""
    section_name: str = ""
    department: str = ""
    department_code: str | None = None
    epigrafe: str | None = None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _page_count(first: int | None, last: int | None) -> int | None:
    return last - first + 1 if first is not None and last is not None and last >= first else None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


def _xml_text(node: etree._Element | None) -> str | None:
    return None if node is None else _clean("".join(node.itertext()))


# --- API XML ---------------------------------------------------------------------------------

def _xml_items(diario: etree._Element, number: str, *, section_attr: str,
               department_code_attr: str,
               make: Callable[[etree._Element, _Where], SumarioItem]) -> Iterator[SumarioItem]:
    """Items of one ``<diario>`` in document order, for both XML sumario formats (they
    differ only in attribute names): under ``<epigrafe>`` or directly under
    ``<departamento>`` (sections 4 and 5)."""
    for seccion in diario.iterfind("seccion"):
        in_section = _Where(diario=number, section=seccion.get(section_attr, ""),
                            section_name=seccion.get("nombre", ""))
        for dept in seccion.iterfind("departamento"):
            in_dept = replace(in_section, department=dept.get("nombre", ""),
                              department_code=dept.get(department_code_attr))
            for child in dept:
                if child.tag == "epigrafe":
                    in_epigrafe = replace(in_dept, epigrafe=child.get("nombre"))
                    yield from (make(node, in_epigrafe) for node in child.iterfind("item"))
                elif child.tag == "item":
                    yield make(child, in_dept)


def _api_item_xml(node: etree._Element, where: _Where) -> SumarioItem:
    pdf = node.find("url_pdf")
    first = _int(pdf.get("pagina_inicial")) if pdf is not None else None
    last = _int(pdf.get("pagina_final")) if pdf is not None else None
    item_id = _xml_text(node.find("identificador"))
    if not item_id:
        raise SumarioFormatError(f"item without <identificador> in section {where.section}")
    return SumarioItem(
        id=item_id, title=_xml_text(node.find("titulo")) or "", section=where.section,
        section_name=where.section_name, department=where.department,
        department_code=where.department_code, epigrafe=where.epigrafe, diario=where.diario,
        control=_xml_text(node.find("control")),
        url_pdf=canonical_url(_xml_text(pdf)),
        pdf_size=_int(pdf.get("szBytes")) if pdf is not None else None,
        first_page=first, last_page=last, page_count=_page_count(first, last),
        url_html=canonical_url(_xml_text(node.find("url_html"))),
        url_xml=canonical_url(_xml_text(node.find("url_xml"))),
    )


def parse_api_xml(data: bytes) -> Sumario:
    """Parse the API sumario as XML; raises NoPublication for a 404 status payload."""
    root = parse_xml_bytes(data)
    if root.tag != "response":
        raise SumarioFormatError(f"not an API sumario (root element <{root.tag}>)")
    code = _xml_text(root.find("status/code"))
    if code and code != "200":
        raise NoPublication(None, f"status {code}: {_xml_text(root.find('status/text')) or ''}")
    sumario = root.find("data/sumario")
    if sumario is None:
        raise SumarioFormatError("API sumario without data/sumario")
    result = Sumario(day=parse_boe_date(_xml_text(sumario.find("metadatos/fecha_publicacion"))),
                     source="api-xml")
    for diario in sumario.iterfind("diario"):
        number = diario.get("numero", "")
        pdf = diario.find("sumario_diario/url_pdf")
        result.diarios.append(Diario(
            number=number, sumario_id=_xml_text(diario.find("sumario_diario/identificador")),
            url_pdf=canonical_url(_xml_text(pdf)),
            pdf_size=_int(pdf.get("szBytes")) if pdf is not None else None))
        result.items.extend(_xml_items(diario, number, section_attr="codigo",
                                       department_code_attr="codigo", make=_api_item_xml))
    return result


# --- API JSON --------------------------------------------------------------------------------

def _as_list(value: Any) -> list[Any]:
    """JSON quirk: one child is an object, several are an array, none is absent or empty."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _children(node: dict[str, Any], key: str) -> list[Any]:
    """Children under ``key``, also when the node wraps them in a ``texto`` object."""
    found = _as_list(node.get(key))
    wrapped = node.get("texto")
    if isinstance(wrapped, dict):
        found += _as_list(wrapped.get(key))
    return found


def _json_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("texto")
    if isinstance(value, (int, float)):
        value = str(value)
    return _clean(value) if isinstance(value, str) else None


def _json_attr(value: Any, name: str) -> str | None:
    return _json_text(value.get(name)) if isinstance(value, dict) else None


def _api_item_json(node: Any, where: _Where) -> SumarioItem:
    if not isinstance(node, dict):
        raise SumarioFormatError(f"item in section {where.section} is not an object")
    pdf = node.get("url_pdf")
    first = _int(_json_attr(pdf, "pagina_inicial"))
    last = _int(_json_attr(pdf, "pagina_final"))
    item_id = _json_text(node.get("identificador"))
    if not item_id:
        raise SumarioFormatError(f"item without identificador in section {where.section}")
    return SumarioItem(
        id=item_id, title=_json_text(node.get("titulo")) or "", section=where.section,
        section_name=where.section_name, department=where.department,
        department_code=where.department_code, epigrafe=where.epigrafe, diario=where.diario,
        control=_json_text(node.get("control")),
        url_pdf=canonical_url(_json_text(pdf)), pdf_size=_int(_json_attr(pdf, "szBytes")),
        first_page=first, last_page=last, page_count=_page_count(first, last),
        url_html=canonical_url(_json_text(node.get("url_html"))),
        url_xml=canonical_url(_json_text(node.get("url_xml"))),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(values: Iterable[Any], what: str) -> Iterator[dict[str, Any]]:
    for value in values:
        if not isinstance(value, dict):
            raise SumarioFormatError(f"JSON sumario: {what} is not an object")
        yield value


def parse_api_json(data: bytes) -> Sumario:
    """Parse the API sumario as JSON; raises NoPublication for a 404 status payload."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SumarioFormatError(f"malformed JSON sumario: {exc}") from exc
    except RecursionError:
        # Python's JSON decoder stops at the interpreter's recursion limit (~1000 levels);
        # a real sumario is 8 levels deep.
        raise SumarioFormatError("JSON sumario nested too deeply") from None
    if not isinstance(doc, dict):
        raise SumarioFormatError("JSON sumario is not an object")
    status = _object(doc.get("status"))
    code = _json_text(status.get("code"))
    if code and code != "200":
        raise NoPublication(None, f"status {code}: {_json_text(status.get('text')) or ''}")
    data_node = doc.get("data")
    sumario = data_node.get("sumario") if isinstance(data_node, dict) else None
    if not isinstance(sumario, dict):
        raise SumarioFormatError("API sumario without data.sumario")
    metadatos = _object(sumario.get("metadatos"))
    result = Sumario(day=parse_boe_date(_json_text(metadatos.get("fecha_publicacion"))),
                     source="api-json")
    for diario in _objects(_children(sumario, "diario"), "diario"):
        number = _json_text(diario.get("numero")) or ""
        summary = _object(diario.get("sumario_diario"))
        result.diarios.append(Diario(
            number=number, sumario_id=_json_text(summary.get("identificador")),
            url_pdf=canonical_url(_json_text(summary.get("url_pdf"))),
            pdf_size=_int(_json_attr(summary.get("url_pdf"), "szBytes"))))
        for seccion in _objects(_children(diario, "seccion"), "seccion"):
            in_section = _Where(diario=number,
                                section=_json_text(seccion.get("codigo")) or "",
                                section_name=_json_text(seccion.get("nombre")) or "")
            for dept in _objects(_children(seccion, "departamento"), "departamento"):
                in_dept = replace(in_section,
                                  department=_json_text(dept.get("nombre")) or "",
                                  department_code=_json_text(dept.get("codigo")))
                # JSON cannot interleave epigrafes and loose items; the XML lists epigrafes
                # first, so this order matches it.
                for epi in _objects(_children(dept, "epigrafe"), "epigrafe"):
                    in_epigrafe = replace(in_dept, epigrafe=_json_text(epi.get("nombre")))
                    result.items.extend(_api_item_json(node, in_epigrafe)
                                        for node in _children(epi, "item"))
                result.items.extend(_api_item_json(node, in_dept)
                                    for node in _children(dept, "item"))
    return result


# --- legacy XML ------------------------------------------------------------------------------

def _legacy_item(node: etree._Element, where: _Where) -> SumarioItem:
    pdf = node.find("urlPdf")
    item_id = node.get("id")
    if not item_id:
        raise SumarioFormatError(f"legacy item without @id in section {where.section}")
    return SumarioItem(
        id=item_id, title=_xml_text(node.find("titulo")) or "", section=where.section,
        section_name=where.section_name, department=where.department,
        department_code=where.department_code, epigrafe=where.epigrafe, diario=where.diario,
        control=node.get("control"),
        url_pdf=canonical_url(_xml_text(pdf)),
        pdf_size=_int(pdf.get("szBytes")) if pdf is not None else None,
        first_page=None, last_page=None,
        page_count=_int(pdf.get("numPag")) if pdf is not None else None,
        url_html=canonical_url(_xml_text(node.find("urlHtm"))),
        url_xml=canonical_url(_xml_text(node.find("urlXml"))),
    )


def parse_legacy_xml(data: bytes) -> Sumario:
    root = parse_xml_bytes(data)
    if root.tag != "sumario":
        raise SumarioFormatError(f"not a legacy sumario (root element <{root.tag}>)")
    result = Sumario(day=parse_boe_date(_xml_text(root.find("meta/fecha"))), source="legacy")
    for diario in root.iterfind("diario"):
        number = diario.get("nbo", "")
        header = diario.find("sumario_nbo")
        pdf = header.find("urlPdf") if header is not None else None
        result.diarios.append(Diario(
            number=number, sumario_id=header.get("id") if header is not None else None,
            url_pdf=canonical_url(_xml_text(pdf)),
            pdf_size=_int(pdf.get("szBytes")) if pdf is not None else None))
        result.items.extend(_xml_items(diario, number, section_attr="num",
                                       department_code_attr="etq", make=_legacy_item))
    return result


def parse_sumario(data: bytes, source: SumarioSource) -> Sumario:
    """Parse a sumario payload; raises SumarioFormatError, NoPublication or XMLSyntaxError."""
    if source == "api-json":
        return parse_api_json(data)
    try:
        return parse_api_xml(data) if source == "api-xml" else parse_legacy_xml(data)
    except etree.XMLSyntaxError as exc:
        raise SumarioFormatError(f"malformed XML sumario: {exc}") from exc
