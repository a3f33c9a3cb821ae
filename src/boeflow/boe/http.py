"""A polite, fault-tolerant HTTP client for the BOE site.

Politeness: an identifying User-Agent and one rate limiter shared by every request of the
process (default 2 requests/s). Resilience: timeouts, a deadline per request that bounds
everything from connecting to the last body byte (headers included: a trickling server
cannot hold us), tenacity retries with exponential backoff and jitter on connection errors,
timeouts, truncated bodies and 5xx, ``Retry-After`` honoured on 429/503 up to a cap, a time
budget per URL across all its attempts, no retry on other 4xx. Bodies are streamed under a
size cap and checked (declared size, content type, well-formedness) before anyone may store
them.

Containment: only the configured BOE base URL is ever contacted. Redirects are followed
here, not by httpx, and every hop must stay on that origin (a small hop limit; loops are
errors), so a listing or a redirect cannot send us to another host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from lxml import etree
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from boeflow.boe.sumario import rebase_url
from boeflow.core.errors import BoeflowError
from boeflow.core.settings import FetchSettings, Settings
from boeflow.core.xmlsafe import parse_xml_bytes

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


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchError(BoeflowError):
    """A request that did not produce an acceptable body. ``retriable`` drives the retries;
    ``attempts`` is how many requests were made for it."""

    retriable = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = 0


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


def _fetch_default(name: str) -> Any:
    """The default of the fetch setting ``boe_<name>``: defined once, in FetchSettings."""
    return FetchSettings.model_fields[f"boe_{name}"].get_default(call_default_factory=True)


@dataclass(frozen=True)
class ClientConfig:
    """What one BoeClient needs: each field is the fetch setting ``boe_<field>``, with its
    default (``ClientConfig()`` is the client of the default settings)."""

    base_url: str = _fetch_default("base_url")
    user_agent: str = _fetch_default("user_agent")
    rate_limit: float = _fetch_default("rate_limit")
    connect_timeout: float = _fetch_default("connect_timeout")
    read_timeout: float = _fetch_default("read_timeout")
    request_deadline: float = _fetch_default("request_deadline")
    max_attempts: int = _fetch_default("max_attempts")
    backoff_initial: float = _fetch_default("backoff_initial")
    backoff_max: float = _fetch_default("backoff_max")
    retry_after_max: float = _fetch_default("retry_after_max")
    url_budget: float = _fetch_default("url_budget")
    max_redirects: int = _fetch_default("max_redirects")
    max_bytes: int = _fetch_default("max_bytes")

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> ClientConfig:
        values = {f.name: getattr(settings, f"boe_{f.name}") for f in fields(cls)}
        if base_url:
            values["base_url"] = base_url
        return cls(**values)


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
        except RecursionError:
            raise FetchError("malformed JSON: nested too deeply") from None
    elif kind == "pdf" and not content.startswith(b"%PDF-"):
        raise FetchError("not a PDF (missing %PDF- header)")


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and exc.retriable


# --- a deadline for the whole request ---------------------------------------------------------
# httpx's timeouts bound each socket operation, not a request: a server sending one header
# line every few seconds never trips them. httpcore lets a connection pool use any network
# backend, so ours shortens every connect/read/write to what is left of the deadline the
# current thread set for its request.

class _Deadline(threading.local):
    at: float | None = None

    def remaining(self, timeout: float | None, error: type[Exception]) -> float | None:
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the request deadline passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.remaining(timeout,
                                                                    httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: object, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname,  # type: ignore[arg-type]
                                      self._deadline.remaining(timeout,
                                                               httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._deadline.remaining(timeout, httpcore.ConnectTimeout),
            local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                            ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, self._deadline.remaining(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(deadline: _Deadline) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport()
    # The one private attribute we touch: httpx builds its pool without a backend option.
    # tests/integration/test_fetch_hostile.py (header trickle) fails if this stops working.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=10,
        max_keepalive_connections=10, keepalive_expiry=5.0,
        network_backend=_DeadlineBackend(deadline))
    return transport


class _Redirect(Exception):
    def __init__(self, location: str, status: int) -> None:
        super().__init__(location)
        self.location = location
        self.status = status


class BoeClient:
    """Fetch BOE URLs (canonical or relative) from the configured base URL."""

    def __init__(self, config: ClientConfig, *, limiter: RateLimiter | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.limiter = limiter or RateLimiter(config.rate_limit)
        self._sleep = sleep
        self.requests_sent = 0
        self._deadline = _Deadline()
        base = urlsplit(config.base_url)
        self._origin = (base.scheme.lower(), base.netloc.lower())
        self._http = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            follow_redirects=False,  # followed in _attempt, each hop checked
            transport=transport or _deadline_transport(self._deadline))

    def __enter__(self) -> BoeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def resolve(self, url: str) -> str:
        """The URL to request for a BOE URL; FetchError for any other host."""
        try:
            return rebase_url(url, self.config.base_url)
        except ValueError as exc:
            raise FetchError(str(exc)) from None

    def _next_hop(self, current: str, location: str, status: int, seen: list[str]) -> str:
        """Where a redirect leads, if it stays on the BOE origin and is not a loop."""
        target = urljoin(current, location.strip())
        parts = urlsplit(target)
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            try:  # an absolute URL on the canonical BOE host maps onto our base URL
                target = rebase_url(target, self.config.base_url)
            except ValueError:
                raise FetchError(f"HTTP {status} redirect to another host refused: "
                                 f"{target[:200]}", status) from None
        if target in seen:
            raise FetchError(f"redirect loop: {' -> '.join([*seen, target])[:300]}", status)
        if len(seen) > self.config.max_redirects:
            raise FetchError(f"more than {self.config.max_redirects} redirects "
                             f"(BOEFLOW_BOE_MAX_REDIRECTS) from {seen[0][:200]}", status)
        return target

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
            # Attempts are capped, and so is the time spent on one URL (waits included).
            stop=(stop_after_attempt(self.config.max_attempts)
                  | stop_before_delay(self.config.url_budget)),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: log.info(
                "retrying %s after %s", target,
                state.outcome.exception() if state.outcome else "?"),
        )
        try:
            return retrying(attempt)
        except FetchError as exc:
            exc.attempts = attempts
            raise

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
        """One request, redirects included, within one deadline."""
        deadline = time.monotonic() + self.config.request_deadline
        self._deadline.at = deadline
        seen = [url]
        try:
            while True:
                try:
                    return self._request(seen[-1], kind, headers, expected_size, attempt,
                                         check_body, deadline)
                except _Redirect as hop:
                    seen.append(self._next_hop(seen[-1], hop.location, hop.status, seen))
        except httpx.TimeoutException as exc:
            if time.monotonic() >= deadline:
                raise TransientError(f"no complete response within the "
                                     f"{self.config.request_deadline:g} s request deadline "
                                     "(BOEFLOW_BOE_REQUEST_DEADLINE)") from exc
            raise TransientError(f"timeout ({type(exc).__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientError(f"connection failed: {exc or type(exc).__name__}") from exc
        finally:
            self._deadline.at = None

    def _request(self, url: str, kind: Kind, headers: dict[str, str],
                 expected_size: int | None, attempt: int, check_body: bool,
                 deadline: float) -> Fetched:
        self.limiter.acquire()
        self.requests_sent += 1
        with self._http.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(f"HTTP {status} without a Location header", status)
                raise _Redirect(location, status)
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
