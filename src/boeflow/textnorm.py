"""Accent folding done in our code, identically at index and query time.

Elasticsearch's integ-test distribution has no ``asciifolding`` filter (it lives in the
``analysis-common`` module), so boeflow indexes a folded copy of text fields and folds
queries the same way: "articulo" finds "artículo" on every distribution.
"""

from __future__ import annotations

import unicodedata

_COMBINING = {c for c in range(0x300, 0x370)}


def fold(text: str) -> str:
    """Lowercase and strip diacritics (á→a, ü→u, ñ→n, ç→c, l·l→l·l kept)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ord(ch) not in _COMBINING)
