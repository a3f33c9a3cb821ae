"""A polite, fault-tolerant HTTP client for the BOE site.

Politeness: an identifying User-Agent and one rate limiter shared by every request of the
process (default 2 requests/s). Resilience: timeouts, a deadline per response (a trickling
server cannot hold us forever), tenacity retries with exponential backoff and jitter on
connection errors, timeouts, truncated bodies and 5xx, ``Retry-After`` honoured on 429/503,
no retry on other 4xx. Bodies are streamed under a size cap and checked (declared size,
content type, well-formedness) before anyone may store them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx
from lxml import etree
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from boeflow.boe.sumario import rebase_url
from boeflow.config import Settings
from boeflow.xmlsafe import parse_xml_bytes

log = logging.getLogger(__name__)

Kind = Literal["xml", "json", "pdf", "html"]

ACCEPT: dict[Kind, str] = {"xml": "application/xml", "json": "application/json",
                           "pdf": "application/pdf", "html": "text/html"}
# Content types each kind may come with (lower-case, parameters stripped).
CONTENT_TYPES: dict[Kind, tuple[str, ...]] = {
    "xml": ("application/xml", "text/xml"),
    "json": ("application/json", "text/json"),
    "pdf": ("application/pdf", "application/x-pdf"),
    "html": ("text/html", "application/xhtml+xml"),
}


class FetchError(Exception):
    """A request that did not produce an acceptable body. ``retriable`` drives the retries."""

    retriable = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(FetchError):
    retriable = True


class RateLimited(TransientError):
    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class NotFound(FetchError):
    def __init__(self, message: str, body: bytes, content_type: str) -> None:
        super().__init__(message, 404)
        self.body = body
        self.content_type = content_type


@dataclass(frozen=True)
class ClientConfig:
    base_url: str = "https://www.boe.es"
    user_agent: str = "boeflow"
    rate_limit: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    request_deadline: float = 300.0
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    max_bytes: int = 200 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> ClientConfig:
        return cls(base_url=base_url or settings.boe_base_url,
                   user_agent=settings.boe_user_agent, rate_limit=settings.boe_rate_limit,
                   connect_timeout=settings.boe_connect_timeout,
                   read_timeout=settings.boe_read_timeout,
                   request_deadline=settings.boe_request_deadline,
                   max_attempts=settings.boe_max_attempts,
                   backoff_initial=settings.boe_backoff_initial,
                   backoff_max=settings.boe_backoff_max,
                   retry_after_max=settings.boe_retry_after_max,
                   max_bytes=settings.boe_max_bytes)


class RateLimiter:
    """At most ``rate`` request starts per second across all threads (0 = unlimited)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True)
class Fetched:
    """A checked response body (status 200) or a 304 confirmation (``content`` empty)."""

    url: str
    status: int
    content: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    attempts: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_well_formed(kind: Kind, content: bytes) -> None:
    """Raise FetchError if an XML or JSON body does not parse (PDF: magic bytes)."""
    if kind == "xml":
        try:
            parse_xml_bytes(content)
        except etree.XMLSyntaxError as exc:
            raise FetchError(f"malformed XML: {exc}") from exc
    elif kind == "json":
        try:
            json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FetchError(f"malformed JSON: {exc}") from exc
    elif kind == "pdf" and not content.startswith(b"%PDF-"):
        raise FetchError("not a PDF (missing %PDF- header)")


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and exc.retriable


class BoeClient:
    """Fetch BOE URLs (canonical or relative) from the configured base URL."""

    def __init__(self, config: ClientConfig, *, limiter: RateLimiter | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.limiter = limiter or RateLimiter(config.rate_limit)
        self._sleep = sleep
        self.requests_sent = 0
        self._http = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            follow_redirects=True, transport=transport)

    def __enter__(self) -> BoeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def resolve(self, url: str) -> str:
        return rebase_url(url, self.config.base_url)

    def fetch(self, url: str, kind: Kind, *, expected_size: int | None = None,
              etag: str | None = None, last_modified: str | None = None,
              accept: str | None = None, check_body: bool = True) -> Fetched:
        """GET ``url`` with retries; raise FetchError (``NotFound`` for 404) when it fails.

        ``etag``/``last_modified`` make the request conditional: a 304 comes back as a
        ``Fetched`` with ``not_modified`` set and no content.
        """
        target = self.resolve(url)
        headers = {"Accept": accept or ACCEPT[kind]}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempts = 0

        def attempt() -> Fetched:
            nonlocal attempts
            attempts += 1
            return self._attempt(target, kind, headers, expected_size, attempts, check_body)

        retrying = Retrying(
            retry=retry_if_exception(_is_retriable),
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: log.info(
                "retrying %s after %s", target,
                state.outcome.exception() if state.outcome else "?"),
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self.config.backoff_initial,
                                          max=self.config.backoff_max,
                                          jitter=self.config.backoff_initial)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # The server said when to come back: never earlier, but within our cap.
            return min(max(exc.retry_after, 0.0), self.config.retry_after_max)
        return backoff

    def _attempt(self, url: str, kind: Kind, headers: dict[str, str],
                 expected_size: int | None, attempt: int, check_body: bool) -> Fetched:
        self.limiter.acquire()
        self.requests_sent += 1
        deadline = time.monotonic() + self.config.request_deadline
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                status = response.status_code
                content_type = response.headers.get("content-type", "")
                if status == 304:
                    return Fetched(url, 304, b"", content_type, response.headers.get("etag"),
                                   response.headers.get("last-modified"), attempt)
                if status == 429 or (status == 503 and "retry-after" in response.headers):
                    raise RateLimited(f"HTTP {status} (rate limited)", status,
                                      parse_retry_after(response.headers.get("retry-after")))
                if status >= 500:
                    raise TransientError(f"HTTP {status}", status)
                if status == 404:
                    body = self._read(response, deadline, min(self.config.max_bytes, 1 << 20))
                    raise NotFound("HTTP 404 Not Found", body, content_type)
                if status != 200:
                    raise FetchError(f"HTTP {status}", status)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.config.max_bytes:
                    raise FetchError(f"body of {declared} bytes exceeds the "
                                     f"{self.config.max_bytes}-byte cap", status)
                content = self._read(response, deadline, self.config.max_bytes)
                etag = response.headers.get("etag")
                modified = response.headers.get("last-modified")
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout ({type(exc).__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientError(f"connection failed: {exc or type(exc).__name__}") from exc
        if check_body:
            self._check(kind, content, content_type, expected_size)
        return Fetched(url, 200, content, content_type, etag, modified, attempt)

    def _read(self, response: httpx.Response, deadline: float, cap: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise FetchError(f"body exceeds the {cap}-byte cap", response.status_code)
            if time.monotonic() > deadline:
                raise TransientError(f"response slower than the "
                                     f"{self.config.request_deadline:g} s deadline")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _check(kind: Kind, content: bytes, content_type: str,
               expected_size: int | None) -> None:
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in CONTENT_TYPES[kind]:
            raise FetchError(f"expected {kind.upper()} but got content-type "
                             f"{content_type or '(none)'!r}", 200)
        if expected_size is not None and len(content) != expected_size:
            # A short or long body the transport did not notice (no Content-Length):
            # most likely a cut transfer, so worth another try.
            raise TransientError(f"size {len(content)} bytes differs from the declared "
                                 f"szBytes {expected_size}", 200)
        check_well_formed(kind, content)
