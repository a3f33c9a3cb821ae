"""Checkable facts in Spanish and Valencian text: BOE ids, law citations, dates, amounts, numbers.

Facts are normalised to a language-independent key, so "30 de noviembre de 2024" (es) and
"30 de novembre de 2024" (va) are the same date and "Real Decreto-ley 6/2024" and
"Reial decret llei 6/2024" the same citation. The review compares these keys between an
output and its source; the translator uses the spans to protect them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FactKind = Literal["boe_id", "citation", "date", "amount", "number", "url"]

BOE_ID = re.compile(r"\bBOE-[A-Z]-\d{4}-\d+\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]*[^\s<>\"')\].,;:]", re.IGNORECASE)

MONTHS: dict[str, int] = {
    # Spanish
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12,
    # Valencian / Catalan
    "gener": 1, "febrer": 2, "març": 3, "maig": 5, "juny": 6, "juliol": 7, "agost": 8,
    "setembre": 9, "novembre": 11, "desembre": 12,
}
_MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))
_APOS = "['’]"

# "30 de noviembre de 2024", "15 d'abril de 2025", "3 octubre 1997", "30 de noviembre".
WORD_DATE = re.compile(
    rf"\b(\d{{1,2}})(?:\.?º)?\s+(?:de\s+|d{_APOS}\s?)?({_MONTH_ALT})\b"
    rf"(?:\s*,?\s*(?:de\s+|del\s+)?(\d{{4}})\b)?",
    re.IGNORECASE,
)
# "mayo de 2020", "maig de 2020" (no day).
MONTH_YEAR = re.compile(rf"\b({_MONTH_ALT})\s+(?:de\s+|del\s+)?(\d{{4}})\b", re.IGNORECASE)
NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

# Canonical (Spanish) name of each kind of norm; Valencian spellings map onto it.
_CITATION_KINDS: list[tuple[str, str]] = [
    (r"real\s+decreto[\s-]+ley", "real decreto-ley"),
    (r"real\s+decreto\s+legislativo", "real decreto legislativo"),
    (r"real\s+decreto", "real decreto"),
    (r"decreto[\s-]+ley", "decreto-ley"),
    (r"decreto\s+legislativo", "decreto legislativo"),
    (r"ley\s+org[aá]nica", "ley orgánica"),
    (r"ley", "ley"),
    (r"decreto", "decreto"),
    (r"orden", "orden"),
    (r"reglamento(?:\s+delegado|\s+de\s+ejecuci[oó]n)?(?:\s*\((?:UE|CE|CEE|UE,\s*Euratom)\))?",
     "reglamento"),
    (r"directiva(?:\s+delegada)?(?:\s*\((?:UE|CE|CEE)\))?", "directiva"),
    (r"reial\s+decret[\s-]+llei", "real decreto-ley"),
    (r"reial\s+decret\s+legislatiu", "real decreto legislativo"),
    (r"reial\s+decret", "real decreto"),
    (r"decret[\s-]+llei", "decreto-ley"),
    (r"decret\s+legislatiu", "decreto legislativo"),
    (r"llei\s+org[aà]nica", "ley orgánica"),
    (r"llei", "ley"),
    (r"decret", "decreto"),
    (r"ordre", "orden"),
    (r"reglament(?:\s*\((?:UE|CE|CEE)\))?", "reglamento"),
]
_KIND_PATTERNS = [(re.compile(rf"^{p}$", re.IGNORECASE), name) for p, name in _CITATION_KINDS]
_KIND_ALT = "|".join(f"(?:{p})" for p, _ in sorted(_CITATION_KINDS, key=lambda kv: -len(kv[0])))
# Number forms: "2/2025", "APA/392/2020" (orders), "2015/848" (EU acts).
CITATION = re.compile(
    rf"\b({_KIND_ALT})\s+((?:[A-Z]{{2,5}}/)?\d{{1,4}}/\d{{2,4}})\b",
    re.IGNORECASE,
)

_NUMBER_BODY = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
AMOUNT = re.compile(
    rf"(?<![\w.,])({_NUMBER_BODY})\s*(millones|millón|milions|milió|mil)?\s*"
    rf"(?:de\s+|d['’]\s?)?(?:euros?\b|€|EUR\b)|(?:€|EUR)\s*({_NUMBER_BODY})",
    re.IGNORECASE,
)
NUMBER = re.compile(r"(?<![\w])\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Fact:
    """One checkable fact: ``key`` is language-independent, ``text`` what was written."""

    kind: FactKind
    key: str
    text: str
    start: int
    end: int


def canonical_kind(raw: str) -> str:
    compact = " ".join(raw.split())
    for pattern, name in _KIND_PATTERNS:
        if pattern.match(compact):
            return name
    return compact.lower()


def normalise_number(raw: str) -> str:
    """Spanish notation to a plain string: "1.500.000,50" → "1500000.5", "72.202" → "72202"."""
    text = raw.strip()
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", text):
        text = text.replace(".", "")
    text = text.replace(",", ".")
    if "." in text and re.fullmatch(r"\d+\.\d+", text):
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
        text = f"{int(whole)}.{frac}" if frac else str(int(whole))
    elif text.isdigit():
        text = str(int(text)) if len(text) < 6 else text  # keep leading zeros of codes
    return text


def _amount_key(number: str, scale: str | None) -> str:
    value = float(normalise_number(number)) if re.fullmatch(
        r"\d+(?:\.\d+)?", normalise_number(number)) else 0.0
    if scale:
        low = scale.lower()
        value *= 1_000 if low == "mil" else 1_000_000
    return f"{value:.2f}"


def _date_key(day: int | None, month: int, year: int | None) -> str:
    return f"{year if year else '*'}-{month:02d}-{day if day else '*'}"


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def extract_facts(text: str, kinds: Iterable[FactKind] | None = None) -> list[Fact]:
    """All facts in ``text``, in order. Numbers inside ids, citations and dates are also
    reported as numbers (a changed digit is caught twice); numbers inside amounts are not,
    so "1,5 millones de euros" is compared by value only."""
    wanted = set(kinds) if kinds is not None else None
    facts: list[Fact] = []

    def add(kind: FactKind, key: str, match: re.Match[str]) -> None:
        if wanted is None or kind in wanted:
            facts.append(Fact(kind, key, match.group(0), match.start(), match.end()))

    for m in BOE_ID.finditer(text):
        add("boe_id", m.group(0), m)
    for m in URL.finditer(text):
        add("url", m.group(0).rstrip(".,;:").lower(), m)
    for m in CITATION.finditer(text):
        add("citation", f"{canonical_kind(m.group(1))} {m.group(2).upper()}", m)
    date_spans: list[tuple[int, int]] = []
    for m in WORD_DATE.finditer(text):
        day = int(m.group(1))
        if 1 <= day <= 31:
            year = int(m.group(3)) if m.group(3) else None
            add("date", _date_key(day, MONTHS[m.group(2).lower()], year), m)
            date_spans.append(m.span())
    for m in MONTH_YEAR.finditer(text):
        if not _overlaps(m.span(), date_spans):
            add("date", _date_key(None, MONTHS[m.group(1).lower()], int(m.group(2))), m)
    for m in NUMERIC_DATE.finditer(text):
        day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= day <= 31 and 1 <= month <= 12:
            add("date", _date_key(day, month, year), m)
    for m in ISO_DATE.finditer(text):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= day <= 31 and 1 <= month <= 12:
            add("date", _date_key(day, month, year), m)
    amount_spans: list[tuple[int, int]] = []
    for m in AMOUNT.finditer(text):
        number = m.group(1) or m.group(3)
        add("amount", _amount_key(number, m.group(2)), m)
        amount_spans.append(m.span())
    for m in NUMBER.finditer(text):
        # "1,5 millones de euros" is checked as an amount; its "1,5" alone is not a fact.
        if not _overlaps(m.span(), amount_spans):
            add("number", normalise_number(m.group(0).rstrip(".,")), m)
    facts.sort(key=lambda f: (f.start, -f.end))
    return facts


def date_matches(output_key: str, source_keys: set[str]) -> bool:
    """A date is supported if the source has it, allowing either side to omit the year
    ("30 de noviembre" vs "30 de noviembre de 2024") but never a different day or month."""
    if output_key in source_keys:
        return True
    year, month, day = output_key.split("-")
    for key in source_keys:
        s_year, s_month, s_day = key.split("-")
        if s_month != month:
            continue
        if day != "*" and s_day != day:
            continue
        if day == "*" and year != "*" and s_year != year:
            continue  # "mayo de 2020" needs a date of May 2020
        if year == "*" or s_year in ("*", year):
            return True
    return False


@dataclass(frozen=True)
class FactIndex:
    """The facts of a source, indexed for membership tests."""

    keys: dict[FactKind, set[str]]
    text_lower: str

    @classmethod
    def of(cls, text: str) -> FactIndex:
        keys: dict[FactKind, set[str]] = {}
        for fact in extract_facts(text):
            keys.setdefault(fact.kind, set()).add(fact.key)
        return cls(keys=keys, text_lower=text.lower())

    def supports(self, fact: Fact) -> bool:
        known = self.keys.get(fact.kind, set())
        if fact.kind == "date":
            return date_matches(fact.key, known)
        if fact.kind == "amount":
            # "1.500 euros" is supported by an amount or a bare number of the same value.
            return fact.key in known or any(
                _as_float(n) == float(fact.key) for n in self.keys.get("number", set()))
        if fact.kind == "url":
            return fact.key.rstrip("/") in {k.rstrip("/") for k in known}
        return fact.key in known


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
