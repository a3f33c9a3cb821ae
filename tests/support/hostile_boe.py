"""Attack fixtures of the security tests: a recorded day served by the replay server
(``boeflow.boe.replay.BoeServer``) as an attacker would serve it — path traversal in
identifiers, off-host redirects and URLs, redirect loops, header trickle, deep JSON, repeated
ids, and script/data/off-host links for the digest (issue 17). The tests fetch from it with a
second listener standing in for "another host". Built on the server's ``overrides`` and
``persistent`` faults; the server itself carries no attack."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Literal

from lxml import etree

from boeflow.boe.replay import BoeServer, Fault, Served
from boeflow.core.xmlsafe import parse_xml_bytes

HostileMode = Literal["traversal_ids", "offhost_redirect", "offhost_urls", "redirect_loop",
                      "header_trickle", "deep_json", "duplicate_ids", "hostile_links"]
HOSTILE_MODES: tuple[HostileMode, ...] = (
    "traversal_ids", "offhost_redirect", "offhost_urls", "redirect_loop", "header_trickle",
    "deep_json", "duplicate_ids", "hostile_links")
# Links a hostile sumario or document may carry, for the digest's link tests (issue 17):
# script and data URLs, other hosts in every disguise, and a value that breaks out of a
# Markdown link and an HTML attribute. Each calls alert(), so a browser shows any that runs.
MARKDOWN_BREAKOUT = ("https://www.boe.es/x) <img src=x onerror=alert(4)> "
                     "[y](javascript:alert(7)")
HOSTILE_ITEM_LINKS: tuple[tuple[str, str], ...] = (
    # (sumario element, value)
    ("url_pdf", "data:text/html,<script>alert(5)</script>"),
    ("url_html", "javascript:alert(6)//www.boe.es/diario_boe/txt.php"),
    ("url_pdf", 'https://www.boe.es/x.pdf" onmouseover="alert(9)'),
    ("url_html", "https://www.boe.es@127.0.0.1/phish"),
    ("url_pdf", "//evil.example/boe/dias/x.pdf"),
    ("url_html", "https://www.boe.es.evil.example/diario_boe/txt.php"),
    ("url_xml", "javascript:alert(10)"),
    ("url_pdf", "JaVaScRiPt:alert(11)"),
    ("url_html", "java\tscript:alert(12)"),
)
# What the served document of a recorded item claims instead of its ELI and PDF.
HOSTILE_ELI_PREFIX = "javascript:alert(3)//www.boe.es/eli/"
HOSTILE_DOCUMENT_PDF = "data:text/html;base64,PHNjcmlwdD5hbGVydCgyKTwvc2NyaXB0Pg=="


def make_hostile(server: BoeServer, mode: HostileMode, day: date, *, other_host: str = "",
                 escape_depth: int = 8, trickle_seconds: float = 0.5) -> list[str]:
    """Make ``server`` serve ``day`` as an attacker would; returns the identifiers it planted.

    ``other_host`` (``http://127.0.0.1:PORT``) is where off-host URLs and redirects
    point: a second listener that must never see a request. ``escape_depth`` is how
    many ``..`` a traversal climbs from the store's items directory.
    """
    api = f"/datosabiertos/api/boe/sumario/{day:%Y%m%d}"
    sumario_file = server.samples / "sumario" / f"BOE-S-{day:%Y%m%d}.xml"
    root = parse_xml_bytes(sumario_file.read_bytes())
    items = root.findall(".//item")
    diario = root.find(".//sumario_diario")
    planted: list[str] = []
    if mode == "traversal_ids":
        climb = "../" * escape_depth
        absolute = "/tmp/boeflow-escaped-absolute"
        hostile_ids = [f"{climb}boeflow-escaped-item", absolute,
                       f"BOE-A-2024-1/{climb}boeflow-escaped-nested",
                       "BOE-A-2024-2\\..\\boeflow-escaped-backslash"]
        template = (server.samples / "documents" / "BOE-A-2024-22928.xml").read_bytes()
        pdf = (server.samples / "pdf" / "BOE-A-2024-23620.pdf").read_bytes()
        # Replace items that are not recorded, so the recorded ones still download.
        victims = [item for item in items if not (
            server.samples / "documents" / f"{_text(item, 'identificador')}.xml").exists()]
        for index, (item, hostile_id) in enumerate(zip(victims, hostile_ids,
                                                       strict=False)):
            _set(item, "identificador", hostile_id)
            _set(item, "url_xml", f"/diario_boe/xml.php?id=EVIL-{index}")
            _set(item, "url_pdf", f"/boe/dias/{day:%Y/%m/%d}/pdfs/EVIL-{index}.pdf")
            for child in item.findall("url_pdf"):
                child.attrib.pop("szBytes", None)
            # The document served for it claims the hostile id too.
            body = re.sub(rb"<identificador>[^<]*</identificador>",
                          b"<identificador>" + _xml_escape(hostile_id).encode() +
                          b"</identificador>", template, count=1)
            server.overrides[f"/diario_boe/xml.php?id=EVIL-{index}"] = Served(
                body, "text/xml; charset=UTF-8")
            server.overrides[f"/boe/dias/{day:%Y/%m/%d}/pdfs/EVIL-{index}.pdf"] = Served(
                pdf, "application/pdf")
            planted.append(hostile_id)
        if diario is not None:
            sumario_id = f"{climb}boeflow-escaped-sumario"
            _set(diario, "identificador", sumario_id)
            for child in diario.findall("url_pdf"):
                child.attrib.pop("szBytes", None)
            planted.append(sumario_id)
    elif mode == "offhost_urls":
        first = items[0]
        _set(first, "url_xml", f"{other_host}/diario_boe/xml.php?id=BOE-A-2024-22928")
        _set(first, "url_pdf", f"{other_host}/boe/dias/2024/11/06/pdfs/x.pdf")
        if diario is not None:
            _set(diario, "url_pdf", f"{other_host}/sumario.pdf")
        planted.append(_text(first, "identificador"))
    elif mode == "offhost_redirect":
        first_id = _text(items[0], "identificador")
        server.persistent[f"/diario_boe/xml.php?id={first_id}"] = Fault(
            "redirect", status=302, location=f"{other_host}/steal?id={first_id}")
        server.persistent[f"/boe/dias/{day:%Y/%m/%d}/pdfs/BOE-S-2024-268.pdf"] = Fault(
            "redirect", status=301, location=f"{other_host}/sumario.pdf")
        planted.append(first_id)
    elif mode == "redirect_loop":
        server.persistent[api] = Fault("redirect", status=302, location="/loop/a")
        server.persistent["/loop/a"] = Fault("redirect", status=302, location="/loop/b")
        server.persistent["/loop/b"] = Fault("redirect", status=307, location=api)
        legacy = f"/diario_boe/xml.php?id=BOE-S-{day:%Y%m%d}"
        server.persistent[legacy] = Fault("redirect", status=302, location=legacy)
        return planted
    elif mode == "header_trickle":
        server.persistent[api] = Fault("trickle_headers", seconds=trickle_seconds)
        return planted
    elif mode == "deep_json":
        depth = 100_000
        body = b'{"status":{"code":"200"},"data":' + b'{"a":' * depth + b"1" + \
            b"}" * depth + b"}"
        server.overrides[api] = Served(body, "application/json")
        return planted
    elif mode == "hostile_links":
        planted = _hostile_links(server, items, day)
    elif mode == "duplicate_ids":
        first = items[0]
        parent = first.getparent()
        assert parent is not None
        parent.insert(parent.index(first) + 1, copy.deepcopy(first))
        planted.append(_text(first, "identificador"))
    server.overrides[api] = Served(etree.tostring(root, xml_declaration=True,
                                                encoding="utf-8"),
                                 "application/xml; charset=utf-8")
    return planted

def _hostile_links(server: BoeServer, items: list[etree._Element], day: date) -> list[str]:
    """Script, data and off-host URLs in the sumario's url_pdf/url_html/url_xml, a
    Markdown breakout in a recorded item's url_html, and that item's document served with
    ``rdf:about="javascript:…//www.boe.es/eli/…"`` and a ``data:`` url_pdf. The recorded
    items keep their url_xml, so they are fetched, parsed and shown in full."""
    recorded = [item for item in items if (
        server.samples / "documents" / f"{_text(item, 'identificador')}.xml").exists()]
    if not recorded:
        raise ValueError(f"no recorded document on {day} to serve with a hostile ELI")
    planted: list[str] = []
    first = recorded[0]
    first_id = _text(first, "identificador")
    _set(first, "url_html", MARKDOWN_BREAKOUT)
    _set(first, "url_pdf", "javascript:alert(1)//www.boe.es/boe/dias/x.pdf")
    document = (server.samples / "documents" / f"{first_id}.xml").read_text(encoding="utf-8")
    document = document.replace('="https://www.boe.es/eli/', f'="{HOSTILE_ELI_PREFIX}')
    document = re.sub(r"<url_pdf>[^<]*</url_pdf>",
                      f"<url_pdf>{HOSTILE_DOCUMENT_PDF}</url_pdf>", document, count=1)
    server.overrides[f"/diario_boe/xml.php?id={first_id}"] = Served(
        document.encode("utf-8"), "text/xml; charset=UTF-8")
    planted.append(first_id)
    for item in recorded[1:]:
        # Genuine links in other spellings: upgraded and kept, not dropped.
        item_id = _text(item, "identificador")
        _set(item, "url_pdf", f"HTTP://WWW.BOE.ES/boe/dias/{day:%Y/%m/%d}/pdfs/{item_id}.pdf")
        planted.append(item_id)
    victims = [item for item in items if item not in recorded
               and _section(item) in {_section(r) for r in recorded}]
    for item, (tag, value) in zip(victims, HOSTILE_ITEM_LINKS, strict=False):
        _set(item, tag, value)
        planted.append(_text(item, "identificador"))
    return planted


def _set(parent: etree._Element, tag: str, value: str) -> None:
    node = parent.find(tag)
    if node is None:
        node = etree.SubElement(parent, tag)
    node.text = value


def _section(item: etree._Element) -> str:
    """The section code of a sumario item (``seccion/@codigo`` above it)."""
    for ancestor in item.iterancestors("seccion"):
        return str(ancestor.get("codigo", ""))
    return ""


def _text(parent: etree._Element, tag: str) -> str:
    return (parent.findtext(tag) or "").strip()


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
