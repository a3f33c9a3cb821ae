"""Parse a BOE item (XML ``<documento>``, PDF or HTML page) into a
:class:`~boeflow.core.types.ParsedDocument` with its legal structure.

``parse_file`` picks the parser from the content, not the file name, so a mislabelled
download still parses; every failure is a :class:`ParseError` naming the document.
"""

from __future__ import annotations

from pathlib import Path

from boeflow.core.settings import Settings
from boeflow.core.types import ParsedDocument
from boeflow.parse.errors import ParseError
from boeflow.parse.limits import ParseLimits

__all__ = ["ParseError", "detect_format", "parse_bytes", "parse_file"]

_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")


def detect_format(data: bytes) -> str | None:
    """"xml", "pdf", "html" or None, from the first bytes."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        return "pdf"
    if any(marker in head for marker in _HTML_MARKERS):
        return "html"
    if head.startswith(b"<?xml") or head.startswith(b"<documento"):
        return "xml"
    return None


def parse_bytes(data: bytes, source: str, settings: Settings | None = None) -> ParsedDocument:
    """Parse one document's bytes; ``source`` names it in errors until its id is known.

    Raises only :class:`ParseError`: whatever else a parser library raises on a hostile or
    broken input (recursion, bad values, decoding) becomes one, so a batch can skip the
    document and go on.
    """
    limits = ParseLimits.from_settings(settings)
    if not data:
        raise ParseError(source, "empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ParseError(source, f"{len(data)} bytes, over the {limits.max_bytes}-byte limit "
                         "(BOEFLOW_PARSE_MAX_BYTES)")
    try:
        return _parse(data, source, limits)
    except ParseError:
        raise
    except (ValueError, LookupError, RecursionError, UnicodeError, AssertionError) as exc:
        # AssertionError: bs4 asserts on some malformed markup.
        raise ParseError(source, f"unreadable document ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from exc


def _parse(data: bytes, source: str, limits: ParseLimits) -> ParsedDocument:
    kind = detect_format(data)
    if kind == "xml":
        from boeflow.parse.xml import parse_xml

        return parse_xml(data, source, limits)
    if kind == "pdf":
        from boeflow.parse.pdf import parse_pdf

        return parse_pdf(data, source)
    if kind == "html":
        from boeflow.parse.html import parse_html

        return parse_html(data, source, limits)
    raise ParseError(source, "unrecognised format (expected BOE XML, PDF or HTML)")


def parse_file(path: str | Path, settings: Settings | None = None) -> ParsedDocument:
    """Parse the document at ``path``; raises :class:`ParseError` (never returns partial
    output) when the file is empty, truncated, encrypted or not a BOE document."""
    file = Path(path)
    limit = ParseLimits.from_settings(settings).max_bytes
    try:
        with file.open("rb") as handle:
            # Read one byte past the limit: enough to refuse /dev/zero or a huge file.
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ParseError(str(file), f"cannot read file ({exc.strerror or exc})") from exc
    return parse_bytes(data, str(file), settings)
