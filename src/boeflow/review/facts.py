"""Checkable facts in Spanish and Valencian text: BOE ids, law citations, dates, amounts,
percentages, article numbers, deadlines ("diez días hábiles"), organisations and numbers.

Facts are normalised to a language-independent key, so "30 de noviembre de 2024" (es) and
"30 de novembre de 2024" (va) are the same date and "Real Decreto-ley 6/2024" and
"Reial decret llei 6/2024" the same citation. The review compares these keys between an
output and its source; the translator uses the spans to protect them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from boeflow.core.textnorm import fold

FactKind = Literal["boe_id", "citation", "date", "amount", "percent", "article", "deadline",
                   "organism", "number", "url"]
# Kinds whose key depends on the language: not compared across a translation.
LANGUAGE_BOUND_KINDS: frozenset[FactKind] = frozenset({"organism"})

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
    (r"orde", "orden"),  # the Valencian form of the GVA's criteria ("Orde 8/2022")
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
# "artículo 14", "art. 3.2", "artículos 28.3", "article 85 bis".
ARTICLE = re.compile(r"\b(?:art[ií]culos?|articles?|arts?\.)\s+(\d+(?:\.\d+)?"
                     r"(?:\s+(?:bis|ter|quater|quinquies))?)\b", re.IGNORECASE)
NUMBER_WORDS: dict[str, int] = {
    # Spanish
    "un": 1, "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13,
    "catorce": 14, "quince": 15, "dieciséis": 16, "veinte": 20, "veinticinco": 25,
    "treinta": 30, "cuarenta": 40, "cuarenta y cinco": 45, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento veinte": 120,
    "ciento ochenta": 180,
    # Valencian
    "u": 1, "dues": 2, "quatre": 4, "cinc": 5, "sis": 6, "set": 7, "huit": 8, "vuit": 8,
    "nou": 9, "deu": 10, "onze": 11, "dotze": 12, "tretze": 13, "catorze": 14, "quinze": 15,
    "setze": 16, "vint": 20, "vint-i-cinc": 25, "trenta": 30, "quaranta": 40,
    "quaranta-cinc": 45, "cinquanta": 50, "seixanta": 60, "noranta": 90, "cent": 100,
}
_UNITS = {"día": "día", "días": "día", "dia": "día", "dies": "día", "semana": "semana",
          "semanas": "semana", "setmana": "semana", "setmanes": "semana", "mes": "mes",
          "meses": "mes", "mesos": "mes", "año": "año", "años": "año", "any": "año",
          "anys": "año", "hora": "hora", "horas": "hora", "hores": "hora"}
_QUALIFIERS = {"hábil": "hábil", "hábiles": "hábil", "hàbil": "hábil", "hàbils": "hábil",
               "natural": "natural", "naturales": "natural", "naturals": "natural"}
_WORD_ALT = "|".join(re.escape(w) for w in sorted(NUMBER_WORDS, key=len, reverse=True))
DEADLINE = re.compile(
    rf"(?<![\w])(\d+|{_WORD_ALT})\s+({'|'.join(sorted(_UNITS, key=len, reverse=True))})\b"
    rf"(?:\s+({'|'.join(sorted(_QUALIFIERS, key=len, reverse=True))})\b)?",
    re.IGNORECASE)
# "15 %", "15 por ciento", "15 por 100" (BOE style), "diez por ciento", "15 per cent".
PERCENT = re.compile(rf"(?<![\w.,])({_NUMBER_BODY}|{_WORD_ALT})\s*(?:%|por\s+cien(?:to)?\b|"
                     r"por\s+100\b|per\s+cent\b)", re.IGNORECASE)
_ORG_HEADS = (r"Ministerio|Ministeri|Consejer[ií]a|Conselleria|Secretar[ií]a\s+de\s+Estado|"
              r"Secretaria\s+d['’]Estat|Secretar[ií]a\s+General|Subsecretar[ií]a|"
              r"Direcci[oó]n\s+General|Direcci[oó]\s+General|Universidad|Universitat|"
              r"Ayuntamiento|Ajuntament|Diputaci[oó]n|Diputaci[oó]|Delegaci[oó]n\s+del\s+Gobierno|"
              r"Agencia|Ag[eè]ncia|Mutualidad|Instituto|Institut|Consejo|Consell|Tribunal|"
              r"Juzgado|Jutjat|Subdirecci[oó]n\s+General|Comisi[oó]n|Comissi[oó]|Servicio|Servei")
_ORG_WORD = r"[A-ZÁÉÍÓÚÑÇÀÈÒ][\wÁÉÍÓÚÑÇÀÈÒáéíóúñçàèòüï·-]*"
# "y"/"i" join two parts of one name only before "de" ("Digital y de la Función Pública");
# "Ministerio del Interior y la Universidad …" is two organisations.
_ORG_LINK = r"(?:(?:y|e|i)\s+(?:de|del|d['’])|de|del|d['’]|dels|para|per|a|la|el|les|los|las)"
ORGANISM = re.compile(  # within one line: fields are joined with newlines
    rf"\b(?:{_ORG_HEADS})(?:[ \t]*{_ORG_LINK}(?:(?<=['’])|(?![\w])))*[ \t]*{_ORG_WORD}"
    rf"(?:(?:[ \t]*{_ORG_LINK}(?:(?<=['’])|(?![\w])))*[ \t]+{_ORG_WORD})*")


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

    def want(*names: FactKind) -> bool:
        return wanted is None or any(n in wanted for n in names)

    for m in (BOE_ID.finditer(text) if want("boe_id") else ()):
        add("boe_id", m.group(0), m)
    for m in (URL.finditer(text) if want("url") else ()):
        add("url", m.group(0).rstrip(".,;:").lower(), m)
    for m in (CITATION.finditer(text) if want("citation") else ()):
        add("citation", f"{canonical_kind(m.group(1))} {m.group(2).upper()}", m)
    date_spans: list[tuple[int, int]] = []
    for m in (WORD_DATE.finditer(text) if want("date") else ()):
        day = int(m.group(1))
        if 1 <= day <= 31:
            year = int(m.group(3)) if m.group(3) else None
            add("date", _date_key(day, MONTHS[m.group(2).lower()], year), m)
            date_spans.append(m.span())
    for m in (MONTH_YEAR.finditer(text) if want("date") else ()):
        if not _overlaps(m.span(), date_spans):
            add("date", _date_key(None, MONTHS[m.group(1).lower()], int(m.group(2))), m)
    for m in (NUMERIC_DATE.finditer(text) if want("date") else ()):
        day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= day <= 31 and 1 <= month <= 12:
            add("date", _date_key(day, month, year), m)
    for m in (ISO_DATE.finditer(text) if want("date") else ()):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= day <= 31 and 1 <= month <= 12:
            add("date", _date_key(day, month, year), m)
    amount_spans: list[tuple[int, int]] = []
    for m in (AMOUNT.finditer(text) if want("amount", "percent", "number") else ()):
        number = m.group(1) or m.group(3)
        add("amount", _amount_key(number, m.group(2)), m)
        amount_spans.append(m.span())
    for m in (PERCENT.finditer(text) if want("percent", "number") else ()):
        if not _overlaps(m.span(), amount_spans):
            raw = m.group(1).lower()
            value = str(NUMBER_WORDS[raw]) if raw in NUMBER_WORDS else normalise_number(raw)
            add("percent", value + "%", m)
            amount_spans.append(m.span())
    for m in (ARTICLE.finditer(text) if want("article") else ()):
        add("article", " ".join(m.group(1).lower().split()), m)
    for m in (DEADLINE.finditer(text) if want("deadline") else ()):
        raw = m.group(1).lower()
        count = int(raw) if raw.isdigit() else NUMBER_WORDS.get(raw)
        if count is None:
            continue
        unit = _UNITS[m.group(2).lower()]
        qualifier = _QUALIFIERS.get((m.group(3) or "").lower(), "")
        add("deadline", f"{count} {unit} {qualifier}".strip(), m)
    for m in (ORGANISM.finditer(text) if want("organism") else ()):
        add("organism", " ".join(fold(m.group(0)).split()), m)
    for m in (NUMBER.finditer(text) if want("number") else ()):
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
    text_folded: str = field(default="", compare=False)

    @classmethod
    def of(cls, text: str) -> FactIndex:
        keys: dict[FactKind, set[str]] = {}
        for fact in extract_facts(text):
            keys.setdefault(fact.kind, set()).add(fact.key)
        return cls(keys=keys, text_lower=text.lower(), text_folded=" ".join(fold(text).split()))

    def supports(self, fact: Fact) -> bool:
        known = self.keys.get(fact.kind, set())
        if fact.kind == "date":
            return date_matches(fact.key, known)
        if fact.kind == "organism":
            # Named as in the source (a longer name may be shortened, never changed).
            return fact.key in known or fact.key in self.text_folded
        if fact.kind == "article":
            base = fact.key.split(".")[0]
            return fact.key in known or any(k.split(".")[0] == base for k in known)
        if fact.kind == "deadline":
            count_unit = " ".join(fact.key.split()[:2])
            return fact.key in known or any(
                k == count_unit or (k.startswith(count_unit) and fact.key == count_unit)
                for k in known)
        if fact.kind == "percent":
            return fact.key in known
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
