"""Helpers for the parse/chunk tests: read the real samples' ``<texto>`` independently of
the parser and measure how much of it a text reproduces, in order."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from boeflow.core.xmlsafe import parse_xml_bytes

DOCUMENTS = Path(__file__).resolve().parents[2] / "samples" / "boe" / "documents"
PDFS = Path(__file__).resolve().parents[2] / "samples" / "boe" / "pdf"
SAMPLE_XMLS = sorted(DOCUMENTS.glob("*.xml"))
INLINE = {"strong", "em", "b", "i", "u", "sup", "sub", "span", "a", "br"}
MARKERS = re.compile(r"\[(?:precepto|encabezado)\]")


def texto_of(path: Path) -> etree._Element:
    texto = parse_xml_bytes(path.read_bytes()).find("texto")
    assert texto is not None
    return texto


def texto_words(path: Path) -> list[str]:
    """Every whitespace-separated word of ``<texto>`` (image sources included)."""
    parts: list[str] = []
    for node in texto_of(path).iter():
        if node.tag == "img":
            parts.append(f" {node.get('src', '')} ")
        elif isinstance(node.tag, str):
            # a block element ends a word even when the markup has no space ("</p><p>")
            parts.append(("" if node.tag in INLINE else " ") + (node.text or ""))
        if node.tail:
            parts.append(("" if node.tag in INLINE else " ") + node.tail)
    return "".join(parts).split()


def in_order_coverage(words: list[str], text: str, window: int = 400) -> float:
    """Share of the non-whitespace characters of ``words`` found, in order, in ``text``.

    Each word is looked for just after the previous match (within ``window`` characters,
    so that a miss cannot skip ahead over the rest of the document)."""
    total = sum(len(w) for w in words)
    found = 0
    position = 0
    for word in words:
        hit = text.find(word, position, position + window + len(word))
        if hit >= 0:
            found += len(word)
            position = hit + len(word)
    return found / total if total else 1.0


def normalise(text: str) -> str:
    """For PDF-vs-XML comparison: no image placeholders or table rules, one space, lower."""
    text = re.sub(r"\[Imagen:[^\]]*\]", " ", text)
    text = re.sub(r"\|(?:-+\|)+", " ", text).replace("|", " ")
    return " ".join(text.split()).lower()


def articulo_headings(path: Path) -> list[str]:
    """Text of every ``<p class="articulo">`` outside ``<blockquote>``, markers removed."""
    headings = []
    for p in texto_of(path).iter("p"):
        if p.get("class") != "articulo" or any(a.tag == "blockquote" for a in p.iterancestors()):
            continue
        headings.append(" ".join(MARKERS.sub("", "".join(p.itertext())).split()))
    return headings
