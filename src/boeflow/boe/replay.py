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

``overrides`` (path → body) and ``persistent`` faults let a caller serve a day differently;
the attack fixtures of the security tests built on them live with the tests
(``tests/support/hostile_boe.py``).
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
