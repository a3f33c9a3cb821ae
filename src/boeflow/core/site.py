"""Facts about the BOE site, defined once: its origin, the hosts it answers on, its time zone,
and which URLs may be shown to readers as links to it.

Every URL that reaches a digest (page, Markdown, e-mail, feed) is either built here from the
BOE origin and a validated BOE identifier (``item_html_url``, ``item_xml_url``), or passed
through ``check_boe_url``: ``https`` (``http`` is upgraded) on one of ``BOE_HOSTS``, no user,
port or fragment, and only the characters real BOE URLs use (ELIs have parentheses:
``/eli/es/c/1978/12/27/(1)``). Anything else — ``javascript:``, ``data:``, another host, a
space, an angle bracket, a control character — is refused with the reason; callers drop the
link and record the reason as an incidencia of the item.

The fetch layer maps these canonical URLs onto ``BOEFLOW_BOE_BASE_URL`` (the replay server in
tests) when it downloads them; links shown to readers always point at the real site.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urljoin, urlsplit, urlunsplit

from boeflow.core.ids import require_boe_id, shown

BOE_ORIGIN = "https://www.boe.es"
BOE_HOSTS = frozenset({"www.boe.es", "boe.es"})
BOE_TIMEZONE = "Europe/Madrid"
MAX_URL_LENGTH = 2048
# Unreserved characters, '%' escapes and the delimiters BOE URLs use; parentheses occur in
# ELIs. No space, quote, angle bracket, backslash, bracket, brace, backtick, '#' or control
# character: none of them is in a BOE URL, and each can break out of HTML or Markdown.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~/?=&%+:,;@()-]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def defanged(value: str) -> str:
    """A refused URL as it may be printed in a digest: quoted, cut, and with every ':' and
    '.' bracketed, so no Markdown renderer or mail client turns it back into a live link
    (``'https[:]//evil[.]example/x'``)."""
    return shown(value).replace(":", "[:]").replace(".", "[.]")


_URL_IN_TEXT = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*:(?://)?|www\.)[^\s'\"<>]+")


def defang_urls(text: str) -> str:
    """Free text (an error line shown as an incidencia) with every URL in it defanged like
    ``defanged``: a reason is read, never clicked, whatever a mail client linkifies."""
    return _URL_IN_TEXT.sub(lambda m: m.group(0).replace(":", "[:]").replace(".", "[.]"),
                            text)


class UnsafeUrl(ValueError):
    """A URL that may not be shown as a link to the BOE; the message says why (Spanish, as
    it ends up in the digest's incidencias)."""


def check_boe_url(url: str, *, path_prefix: str = "/") -> str:
    """The canonical ``https`` URL on the BOE site that ``url`` names (site-relative URLs are
    resolved against the BOE origin), or UnsafeUrl."""
    text = url.strip()
    if not text:
        raise UnsafeUrl("URL vacía")
    if len(text) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"URL de más de {MAX_URL_LENGTH} caracteres")
    if not _URL_CHARS.fullmatch(text) or _BAD_ESCAPE.search(text):
        raise UnsafeUrl(f"{defanged(text)} contiene caracteres que no tiene una URL del BOE")
    parts = urlsplit(urljoin(BOE_ORIGIN + "/", text))
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeUrl(f"{defanged(text)} no es https (esquema {scheme or 'ninguno'!r})")
    host = parts.netloc.lower()
    if host not in BOE_HOSTS:
        raise UnsafeUrl(f"{defanged(text)} no está en el sitio del BOE")
    if not parts.path.startswith(path_prefix):
        raise UnsafeUrl(f"{defanged(text)} no empieza por {path_prefix}")
    return urlunsplit(("https", host, parts.path, parts.query, ""))


def safe_boe_url(url: str | None, *, path_prefix: str = "/") -> str | None:
    """``check_boe_url`` that answers None instead of raising."""
    if not url:
        return None
    try:
        return check_boe_url(url, path_prefix=path_prefix)
    except UnsafeUrl:
        return None


def is_eli(url: str) -> bool:
    """An ELI of the BOE: ``https://www.boe.es/eli/…`` and nothing else."""
    return safe_boe_url(url, path_prefix="/eli/") is not None


def check_site_origin(value: str) -> str:
    """A configured base of links to the BOE (``BOEFLOW_DIGEST_SITE_URL``): ``https`` on a
    BOE host, no path; returned without a trailing slash."""
    parts = urlsplit(value.strip())
    if (parts.scheme.lower() != "https" or parts.netloc.lower() not in BOE_HOSTS
            or parts.path.strip("/") or parts.query or parts.fragment):
        raise UnsafeUrl(f"{defanged(value)} is not https://<host> with a host in "
                        f"{', '.join(sorted(BOE_HOSTS))}")
    return f"https://{parts.netloc.lower()}"


def item_html_url(boe_id: str, origin: str = BOE_ORIGIN) -> str:
    """The BOE's HTML page of an item, built from its identifier."""
    return f"{check_site_origin(origin)}/diario_boe/txt.php?id={require_boe_id(boe_id)}"


def item_xml_url(boe_id: str, origin: str = BOE_ORIGIN) -> str:
    """The BOE's XML of an item, built from its identifier."""
    return f"{check_site_origin(origin)}/diario_boe/xml.php?id={require_boe_id(boe_id)}"


def day_url(day: date, origin: str = BOE_ORIGIN) -> str:
    """The BOE's own index page of a publication day (``/boe/dias/YYYY/MM/DD/``)."""
    return f"{check_site_origin(origin)}/boe/dias/{day:%Y/%m/%d}/"


__all__ = ["BOE_HOSTS", "BOE_ORIGIN", "BOE_TIMEZONE", "UnsafeUrl", "check_boe_url",
           "check_site_origin", "day_url", "is_eli", "item_html_url",
           "item_xml_url", "safe_boe_url"]
