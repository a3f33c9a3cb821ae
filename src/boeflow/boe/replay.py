"""Replay server: serves the recorded BOE samples on loopback under the BOE URL layout,
injects faults on demand.

* ``/datosabiertos/api/boe/sumario/YYYYMMDD`` → ``sumario/BOE-S-YYYYMMDD.xml|.json`` (by
  ``Accept``; API-format files only), or 404 with an API status payload (no publication).
* ``/diario_boe/xml.php?id=BOE-S-YYYYMMDD`` → the legacy sumario; ``?id=BOE-A|B-…`` →
  ``documents/<id>.xml``.
* ``/boe/dias/YYYY/MM/DD/pdfs/<id>.pdf`` → ``pdf/<id>.pdf``.
* ``/datosabiertos/api/legislacion-consolidada/id/<id>/metadatos|analisis|texto|texto/indice``
  → ``consolidada/<id>/metadatos|analisis|texto|indice.xml``; ``…/texto/bloque/<block>`` is
  cut out of ``texto.xml``; a law or block not recorded answers the API's 404 payload.

Anything not recorded answers 404. Every response carries an ETag and honours
``If-None-Match``. Only binds 127.0.0.1; every sleep is bounded.

``BoeServer.make_hostile(mode, …)`` turns a recorded day into an attack on the client (path
traversal in identifiers, off-host redirects and URLs, redirect loops, header trickle, deep
JSON, repeated ids); the security tests fetch from it with a second listener standing in
for "another host".
"""

from __future__ import annotations

import copy
import hashlib
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from boeflow.core.xmlsafe import parse_xml_bytes

FaultKind = Literal["status", "timeout", "reset", "truncate", "truncate_no_length",
                    "retry_after", "slow", "content_type", "malformed", "redirect",
                    "trickle_headers"]
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
# The longest a trickling response may last: the server's sleeps stay bounded.
TRICKLE_MAX_SECONDS = 120.0

NOT_FOUND_XML = ('<?xml version="1.0" encoding="utf-8"?>\n<response><status><code>404</code>'
                 '<text>La información solicitada no existe</text></status><data></data>'
                 '</response>\n').encode()
NOT_FOUND_JSON = (b'{"status":{"code":"404","text":"La informaci\\u00f3n solicitada no existe"},'
                  b'"data":[]}')


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-request is what the fault tests provoke; stay quiet.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class Fault:
    """What to do instead of a clean response. ``seconds``: sleep, Retry-After or slowness."""

    kind: FaultKind
    status: int = 500
    seconds: float = 0.0
    content_type: str = "text/html; charset=utf-8"
    location: str = ""  # redirect target


@dataclass
class Logged:
    path: str
    status: int
    complete: bool  # the whole body was sent
    at: float
    headers: dict[str, str]


@dataclass
class Served:
    body: bytes
    content_type: str


@dataclass
class BoeServer:
    samples: Path
    latency: float = 0.0
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    persistent: dict[str, Fault] = field(default_factory=dict)
    overrides: dict[str, Served] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> BoeServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # --- test API -----------------------------------------------------------------------

    def inject(self, path: str, *faults: Fault) -> None:
        """Faults for the next requests of ``path`` (path plus query), one per request."""
        self.faults.setdefault(path, []).extend(faults)

    def requests(self, predicate: Callable[[Logged], bool] | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if predicate is None or predicate(r)]

    def requests_for(self, path: str) -> list[Logged]:
        return self.requests(lambda r: r.path == path)

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # --- hostile modes --------------------------------------------------------------------

    def make_hostile(self, mode: HostileMode, day: date, *, other_host: str = "",
                     escape_depth: int = 8, trickle_seconds: float = 0.5) -> list[str]:
        """Serve ``day`` as an attacker would; returns the identifiers it planted.

        ``other_host`` (``http://127.0.0.1:PORT``) is where off-host URLs and redirects
        point: a second listener that must never see a request. ``escape_depth`` is how
        many ``..`` a traversal climbs from the store's items directory.
        """
        api = f"/datosabiertos/api/boe/sumario/{day:%Y%m%d}"
        sumario_file = self.samples / "sumario" / f"BOE-S-{day:%Y%m%d}.xml"
        root = parse_xml_bytes(sumario_file.read_bytes())
        items = root.findall(".//item")
        diario = root.find(".//sumario_diario")
        planted: list[str] = []
        if mode == "traversal_ids":
            climb = "../" * escape_depth
            absolute = "/tmp/boeflow-escaped-absolute"  # noqa: S108 - an attack string
            hostile_ids = [f"{climb}boeflow-escaped-item", absolute,
                           f"BOE-A-2024-1/{climb}boeflow-escaped-nested",
                           "BOE-A-2024-2\\..\\boeflow-escaped-backslash"]
            template = (self.samples / "documents" / "BOE-A-2024-22928.xml").read_bytes()
            pdf = (self.samples / "pdf" / "BOE-A-2024-23620.pdf").read_bytes()
            # Replace items that are not recorded, so the recorded ones still download.
            victims = [item for item in items if not (
                self.samples / "documents" / f"{_text(item, 'identificador')}.xml").exists()]
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
                self.overrides[f"/diario_boe/xml.php?id=EVIL-{index}"] = Served(
                    body, "text/xml; charset=UTF-8")
                self.overrides[f"/boe/dias/{day:%Y/%m/%d}/pdfs/EVIL-{index}.pdf"] = Served(
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
            self.persistent[f"/diario_boe/xml.php?id={first_id}"] = Fault(
                "redirect", status=302, location=f"{other_host}/steal?id={first_id}")
            self.persistent[f"/boe/dias/{day:%Y/%m/%d}/pdfs/BOE-S-2024-268.pdf"] = Fault(
                "redirect", status=301, location=f"{other_host}/sumario.pdf")
            planted.append(first_id)
        elif mode == "redirect_loop":
            self.persistent[api] = Fault("redirect", status=302, location="/loop/a")
            self.persistent["/loop/a"] = Fault("redirect", status=302, location="/loop/b")
            self.persistent["/loop/b"] = Fault("redirect", status=307, location=api)
            legacy = f"/diario_boe/xml.php?id=BOE-S-{day:%Y%m%d}"
            self.persistent[legacy] = Fault("redirect", status=302, location=legacy)
            return planted
        elif mode == "header_trickle":
            self.persistent[api] = Fault("trickle_headers", seconds=trickle_seconds)
            return planted
        elif mode == "deep_json":
            depth = 100_000
            body = b'{"status":{"code":"200"},"data":' + b'{"a":' * depth + b"1" + \
                b"}" * depth + b"}"
            self.overrides[api] = Served(body, "application/json")
            return planted
        elif mode == "hostile_links":
            planted = self._hostile_links(items, day)
        elif mode == "duplicate_ids":
            first = items[0]
            parent = first.getparent()
            assert parent is not None
            parent.insert(parent.index(first) + 1, copy.deepcopy(first))
            planted.append(_text(first, "identificador"))
        self.overrides[api] = Served(etree.tostring(root, xml_declaration=True,
                                                    encoding="utf-8"),
                                     "application/xml; charset=utf-8")
        return planted

    def _hostile_links(self, items: list[etree._Element], day: date) -> list[str]:
        """Script, data and off-host URLs in the sumario's url_pdf/url_html/url_xml, a
        Markdown breakout in a recorded item's url_html, and that item's document served with
        ``rdf:about="javascript:…//www.boe.es/eli/…"`` and a ``data:`` url_pdf. The recorded
        items keep their url_xml, so they are fetched, parsed and shown in full."""
        recorded = [item for item in items if (
            self.samples / "documents" / f"{_text(item, 'identificador')}.xml").exists()]
        if not recorded:
            raise ValueError(f"no recorded document on {day} to serve with a hostile ELI")
        planted: list[str] = []
        first = recorded[0]
        first_id = _text(first, "identificador")
        _set(first, "url_html", MARKDOWN_BREAKOUT)
        _set(first, "url_pdf", "javascript:alert(1)//www.boe.es/boe/dias/x.pdf")
        document = (self.samples / "documents" / f"{first_id}.xml").read_text(encoding="utf-8")
        document = document.replace('="https://www.boe.es/eli/', f'="{HOSTILE_ELI_PREFIX}')
        document = re.sub(r"<url_pdf>[^<]*</url_pdf>",
                          f"<url_pdf>{HOSTILE_DOCUMENT_PDF}</url_pdf>", document, count=1)
        self.overrides[f"/diario_boe/xml.php?id={first_id}"] = Served(
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

    # --- routing ------------------------------------------------------------------------

    def resolve(self, path: str, accept: str) -> Served | None:
        if path in self.overrides:
            return self.overrides[path]
        parts = urlsplit(path)
        api = re.fullmatch(r"/datosabiertos/api/boe/sumario/(\d{8})", parts.path)
        if api:
            ext = "json" if "json" in accept else "xml"
            file = self.samples / "sumario" / f"BOE-S-{api.group(1)}.{ext}"
            if file.exists():
                body = file.read_bytes()
                if ext == "json" or b"<response>" in body[:200]:  # API format only
                    return Served(body, f"application/{ext}; charset=utf-8")
            return None
        if parts.path == "/diario_boe/xml.php":
            boe_id = parse_qs(parts.query).get("id", [""])[0]
            if re.fullmatch(r"BOE-S-\d{8}", boe_id):
                file = self.samples / "sumario" / f"{boe_id}.xml"
                if file.exists() and b"<sumario>" in file.read_bytes()[:200]:
                    return Served(file.read_bytes(), "text/xml; charset=UTF-8")
                return None
            file = self.samples / "documents" / f"{boe_id}.xml"
            if re.fullmatch(r"BOE-[A-Z]-\d{4}-\d+", boe_id) and file.exists():
                return Served(file.read_bytes(), "text/xml; charset=UTF-8")
            return None
        consolidada = re.fullmatch(
            r"/datosabiertos/api/legislacion-consolidada/id/(BOE-[A-Z]-\d{4}-\d+)/"
            r"(metadatos|analisis|texto|texto/indice|texto/bloque/([A-Za-z0-9_-]+))",
            parts.path)
        if consolidada:
            return self._consolidada(*consolidada.groups())
        pdf = re.fullmatch(r"/boe/dias/\d{4}/\d{2}/\d{2}/pdfs/(BOE-[A-Z]-\d{4}-\d+)\.pdf",
                           parts.path)
        if pdf and (self.samples / "pdf" / f"{pdf.group(1)}.pdf").exists():
            return Served((self.samples / "pdf" / f"{pdf.group(1)}.pdf").read_bytes(),
                          "application/pdf")
        return None

    def _consolidada(self, boe_id: str, what: str, block_id: str | None) -> Served | None:
        folder = self.samples / "consolidada" / boe_id
        xml = "application/xml; charset=utf-8"
        if block_id is None:
            name = "indice" if what == "texto/indice" else what
            file = folder / f"{name}.xml"
            return Served(file.read_bytes(), xml) if file.exists() else None
        texto = folder / "texto.xml"
        if not texto.exists():
            return None
        root = parse_xml_bytes(texto.read_bytes())
        node = next((b for b in root.iterfind("data/texto/bloque")
                     if b.get("id") == block_id), None)
        if node is None:
            return None
        response = etree.Element("response")
        status = etree.SubElement(response, "status")
        etree.SubElement(status, "code").text = "200"
        etree.SubElement(status, "text").text = "ok"
        etree.SubElement(response, "data").append(copy.deepcopy(node))
        return Served(etree.tostring(response, xml_declaration=True, encoding="utf-8"), xml)

    def next_fault(self, path: str) -> Fault | None:
        # Persistent faults win over overrides and recordings: a hostile path stays hostile.
        with self._lock:
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
            return self.persistent.get(path)

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a stuck client cannot hold a handler thread for long
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
                    self.close_connection = True

            def _send(self, status: int, body: bytes, content_type: str,
                      extra: dict[str, str] | None = None, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                path = self.path
                accept = self.headers.get("Accept", "")
                headers = {k.lower(): v for k, v in self.headers.items()}
                if server.latency:
                    time.sleep(server.latency)
                fault = server.next_fault(path)
                served = server.resolve(path, accept)

                def log(status: int, complete: bool) -> None:
                    server.record(Logged(path, status, complete, time.monotonic(), headers))

                if fault is not None and fault.kind == "redirect":
                    log(fault.status, True)
                    self._send(fault.status, b"", "text/html", {"Location": fault.location})
                    return
                if fault is not None and fault.kind == "trickle_headers":
                    log(200, False)
                    self.send_response(200)
                    self.flush_headers()
                    started = time.monotonic()
                    count = 0
                    while time.monotonic() - started < TRICKLE_MAX_SECONDS:
                        time.sleep(fault.seconds)
                        self.wfile.write(f"X-Trickle-{count}: slowly\r\n".encode())
                        self.wfile.flush()
                        count += 1
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "status":
                    log(fault.status, True)
                    self._send(fault.status, b"<html>error</html>", "text/html")
                    return
                if fault is not None and fault.kind == "retry_after":
                    log(429, True)
                    self._send(429, b"too many requests", "text/plain",
                               {"Retry-After": str(int(fault.seconds))})
                    return
                if fault is not None and fault.kind == "timeout":
                    log(0, False)
                    time.sleep(fault.seconds)  # longer than the client's read timeout
                    self.close_connection = True
                    return
                if served is None:
                    log(404, True)
                    if path.startswith(("/datosabiertos/api/boe/sumario/",
                                        "/datosabiertos/api/legislacion-consolidada/")):
                        payload = NOT_FOUND_JSON if "json" in accept else NOT_FOUND_XML
                        kind = "json" if "json" in accept else "xml"
                        self._send(404, payload, f"application/{kind}; charset=utf-8")
                    else:
                        self._send(404, b"<html>Not Found</html>", "text/html")
                    return
                body, content_type = served.body, served.content_type
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if fault is None and headers.get("if-none-match") == etag:
                    log(304, True)
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault is not None and fault.kind == "content_type":
                    content_type = fault.content_type
                if fault is not None and fault.kind == "malformed":
                    body = body[: len(body) // 2]  # a real document cut short: not well formed
                half = body[: len(body) // 2]
                if fault is not None and fault.kind in ("reset", "truncate"):
                    log(200, False)
                    self._send(200, half, content_type, {"ETag": etag}, length=len(body))
                    self.wfile.flush()
                    if fault.kind == "reset":  # RST instead of FIN
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "truncate_no_length":
                    log(200, False)
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(half)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "slow":
                    log(200, False)
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    pieces = 8
                    step = max(1, len(body) // pieces)
                    for start in range(0, len(body), step):
                        self.wfile.write(body[start:start + step])
                        self.wfile.flush()
                        time.sleep(fault.seconds / pieces)
                    self.close_connection = True
                    return
                log(200, True)
                self._send(200, body, content_type, {"ETag": etag})

        return Handler


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
