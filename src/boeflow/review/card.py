"""The entry-into-force and deadline card of a document, built from its parsed text alone.

``facts_card(doc)`` finds, deterministically (no model):

* ``entrada_en_vigor``: the disposition that sets it ("entrará en vigor el día siguiente al
  de su publicación", "a los veinte días", "el mismo día", a fixed date) and its date;
* ``plazos``: every "plazo de N días hábiles/naturales/meses … desde …" with its last day,
  computed per Ley 39/2015, art. 30: days are business days unless said natural (30.2);
  the count starts the day after the publication or event (30.3); business days skip
  Saturdays, Sundays and the holidays of Spain and of the configured autonomous community
  (``holidays`` package; default Comunitat Valenciana, 30.6); months and years run date to
  date, to the last day of the month when it has no such day (30.4); a last day that is not
  a business day moves to the next business day (30.5);
* ``importes``: amounts with the sentence saying what they pay for;
* ``referencias``: what the document modifies, repeals or cites (``<analisis>``).

Every value carries its source anchor (structural path, offsets into the parsed text and
the quoted span: ``quote == text[start:end]``). What cannot be computed says why:
``date: null`` with a ``reason`` (no text, a deadline with no start, an impossible date).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from boeflow.review.anchors import AnchorSource
from boeflow.review.facts import MONTHS, NUMBER_WORDS, extract_facts

if TYPE_CHECKING:
    from collections.abc import Container

    from boeflow.review.source import SourceDocument

DEFAULT_REGION = "VC"

_NUM = "|".join(re.escape(w) for w in sorted(NUMBER_WORDS, key=len, reverse=True))
_SELF = (r"(?:(?:la|el|las|los)\s+present[ea]s?|est[ea]s?|dich[oa]s?)\s+(?:\w+[\s-]?){0,3}?"
         r"(?:orden|resoluci[oó]n|real\s+decreto(?:[\s-]ley)?|decreto(?:[\s-]ley)?|ley|acuerdo|"
         r"instrucci[oó]n(?:es)?|circular|convocatoria|extracto|reglamento|norma|anuncio|"
         r"convenio|disposici[oó]n)")
IN_FORCE = re.compile(r"\b(?:entrar[áa]n?\s+en\s+vigor|surtir[áa]n?\s+efectos?|"
                      r"producir[áa]n?\s+(?:sus\s+)?efectos?)\b", re.IGNORECASE)
_PUBLICATION = r"(?:su|la)\s+(?:completa\s+)?publicaci[oó]n"
_NEXT_DAY = re.compile(rf"(?:el\s+|al\s+|a\s+partir\s+del?\s+|desde\s+el\s+)?d[ií]a\s+"
                       rf"siguiente\s+(?:al?\s+(?:de\s+)?|de\s+){_PUBLICATION}", re.IGNORECASE)
_SAME_DAY = re.compile(rf"(?:el\s+)?(?:mismo\s+)?d[ií]a\s+(?:de\s+)?{_PUBLICATION}",
                       re.IGNORECASE)
_AFTER = re.compile(rf"\ba\s+los?\s+(\d+|{_NUM})\s+(d[ií]as|mes(?:es)?|años?)\s+(?:naturales\s+)?"
                    rf"(?:de|siguientes\s+a(?:l\s+de)?)\s+{_PUBLICATION}", re.IGNORECASE)
_AFTER_ONE = re.compile(rf"\bal\s+(mes|año)\s+de\s+{_PUBLICATION}", re.IGNORECASE)
_OTHER_GAZETTE = re.compile(r"Diari\s+Oficial|Diario\s+Oficial\s+de\s+(?!l?\s*Estado)|"
                            r"Bolet[ií]n\s+Oficial\s+de\s+(?:la|las|los)\s+(?!Estado)",
                            re.IGNORECASE)

PLAZO = re.compile(
    rf"\bplazo\s+(?:m[áa]ximo\s+|improrrogable\s+|adicional\s+|general\s+)?"
    rf"(?:(?:de|para\s+la)\s+(?:presentaci[oó]n|solicitud|alegaciones|subsanaci[oó]n)"
    rf"(?:\s+(?:de|del|las?|los?)\s+\w+){{0,3}}\s+(?=ser[áa]\s))?"
    rf"(?:(?:que\s+no\s+podr[áa]\s+exceder\s+)?de\s+|ser[áa]\s+(?:de\s+)?)?"
    rf"(?:los\s+|hasta\s+)?(\d+|{_NUM})\s+(d[ií]as|mes(?:es)?|años?|horas?)"
    rf"(?:\s+(h[áa]biles|naturales))?(?:\s+siguientes)?", re.IGNORECASE)
# What a deadline runs from, looked for in the words after it (same sentence).
_FROM_PUBLICATION = re.compile(
    rf"\b(?:desde|a\s+partir\s+de|contad[oa]s?\s+(?:a\s+partir\s+de|desde)|"
    rf"a\s+contar\s+(?:desde|a\s+partir\s+de)|tras)\s+(?:el\s+(?:d[ií]a\s+)?siguiente\s+"
    rf"(?:al?\s+(?:de\s+)?|de\s+))?{_PUBLICATION}([^;.]{{0,80}})",
    re.IGNORECASE)
_FROM_IN_FORCE = re.compile(
    r"\b(?:desde|a\s+partir\s+de|tras|contad[oa]s?\s+desde|a\s+contar\s+desde)\s+"
    r"(?:el\s+d[ií]a\s+siguiente\s+(?:al?\s+(?:de\s+)?)?)?la\s+(?:entrada\s+en\s+vigor|vigencia)"
    r"([^;.]{0,80})", re.IGNORECASE)
_FROM_EVENT = re.compile(r"\b(?:desde|a\s+partir\s+de|tras|contad[oa]s?\s+desde|"
                         r"a\s+contar\s+desde|siguientes\s+a)\s+(?:el\s+|la\s+|los\s+|las\s+|"
                         r"su\s+|aquel|que\s)[^,;.]{0,60}", re.IGNORECASE)
# The words after "publicación"/"entrada en vigor" that make it this document's: the BOE,
# "de esta orden", or nothing more (a comma, the end, "de acuerdo con …").
_SELF_REFERENCE = re.compile(rf"^\s*(?:en\s+el\s+(?:«\s*)?Bolet[ií]n\s+Oficial\s+del\s+Estado|"
                             rf"en\s+el\s+BOE|(?:de|del)\s+{_SELF}|,|$|"
                             rf"(?:de\s+acuerdo|seg[uú]n|conforme|para|y|o)\b)",
                             re.IGNORECASE)
# Another venue in the sentence: a bare "su publicación" is then that one's.
_OTHER_VENUE = re.compile(r"tabl[oó]n|sede\s+electr[oó]nica|edicto|notificaci[oó]n",
                          re.IGNORECASE)
_FIXED_DATE = re.compile(rf"\b(\d{{1,2}})(?:\.?º)?\s+de\s+({'|'.join(MONTHS)})\s+"
                         rf"(?:de(?:l\s+año)?\s+)?(\d{{4}})\b", re.IGNORECASE)
_UNITS = {"dia": "días", "mes": "meses", "ano": "años", "hor": "horas"}


@dataclass(frozen=True)
class Calendar:
    """Business days for Ley 39/2015 art. 30: not Saturday, Sunday or a holiday of Spain
    or of the region (ISO 3166-2 subdivision of ES, e.g. VC, MD, CT)."""

    region: str = DEFAULT_REGION

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _holidays(self.region, day.year)

    def next_business_day(self, day: date) -> date:
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, start: date, count: int) -> date:
        """The ``count``-th business day after ``start`` (30.2, 30.3)."""
        day = start
        left = count
        while left > 0:
            day += timedelta(days=1)
            if self.is_business_day(day):
                left -= 1
        return day


@lru_cache(maxsize=64)
def _holidays(region: str, year: int) -> Container[date]:
    import holidays

    return holidays.country_holidays("ES", subdiv=region or None, years=year)


def add_months(start: date, months: int) -> date:
    """Date to date (30.4): the same day ``months`` later, else the month's last day."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _count(raw: str) -> int | None:
    low = raw.lower()
    return int(low) if low.isdigit() else NUMBER_WORDS.get(low)


def _unit(raw: str) -> str:
    from boeflow.core.textnorm import fold

    return _UNITS[fold(raw)[:3]]


def deadline_date(start: date, quantity: int, unit: str, qualifier: str,
                  cal: Calendar) -> tuple[date | None, str]:
    """(last day, how it was computed) of a deadline running from ``start`` (the day of
    the publication or event: the count begins the day after)."""
    if unit == "días":
        if qualifier == "naturales":
            last = start + timedelta(days=quantity)
            moved = cal.next_business_day(last)
            how = f"{start.isoformat()} + {quantity} días naturales = {last.isoformat()}"
            return moved, how + (f", inhábil → {moved.isoformat()}" if moved != last else "")
        last = cal.add_business_days(start, quantity)
        return last, (f"{quantity} días hábiles desde el día siguiente a {start.isoformat()} "
                      f"= {last.isoformat()}")
    if unit in ("meses", "años"):
        months = quantity * (12 if unit == "años" else 1)
        last = add_months(start, months)
        moved = cal.next_business_day(last)
        how = f"{start.isoformat()} + {quantity} {unit} (fecha a fecha) = {last.isoformat()}"
        return moved, how + (f", inhábil → {moved.isoformat()}" if moved != last else "")
    return None, f"plazo en {unit}: no se calcula una fecha"


def _anchor(source: AnchorSource, start: int, end: int) -> dict[str, Any]:
    span = source.span(start, end)
    return {"path": span.path, "start": span.start, "end": span.end, "quote": span.quote}


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    right_candidates = [i for i in (text.find(". ", end), text.find("\n", end)) if i >= 0]
    right = min(right_candidates) + 1 if right_candidates else len(text)
    left = left + 1 if left >= 0 else 0
    while left < right and text[left].isspace():
        left += 1
    while right > left and text[right - 1].isspace():
        right -= 1
    return left, right


def _fixed_date(text: str) -> tuple[date | None, str, re.Match[str] | None]:
    """The first "D de MES de AAAA" of ``text``: (date, reason if impossible, match)."""
    match = _FIXED_DATE.search(text)
    if match is None:
        return None, "", None
    day, month, year = int(match.group(1)), MONTHS[match.group(2).lower()], int(match.group(3))
    try:
        return date(year, month, day), "", match
    except ValueError:
        return None, f"fecha imposible: «{match.group(0)}»", match


def entry_into_force(source: AnchorSource, published: date | None) -> dict[str, Any] | None:
    """The disposition setting the document's entry into force, and its date."""
    text = source.text
    found = list(IN_FORCE.finditer(text))
    if not found:
        return None

    def own(match: re.Match[str]) -> bool:  # "La presente orden entrará en vigor …"
        before = text[max(0, match.start() - 120):match.start()]
        return re.search(_SELF + r"[^.]{0,80}$", before, re.IGNORECASE) is not None

    # Its own entry into force first ("entrará en vigor" before "producirá efectos", which
    # often applies to one provision only), else the last such clause of the text.
    match = next((m for m in found if own(m) and "vigor" in m.group(0).lower()),
                 next((m for m in found if own(m)), found[-1]))
    start, end = _sentence_bounds(text, match.start(), match.end())
    clause = text[match.end():end]
    record: dict[str, Any] = {"text": " ".join(text[start:end].split()), "date": None,
                              "source": _anchor(source, start, end)}
    day: date | None = None
    reason = ""
    other = _OTHER_GAZETTE.search(clause[:200])
    fixed, impossible, fixed_match = _fixed_date(clause[:120])
    if impossible:
        reason = impossible
    elif other and not re.search(r"Bolet[ií]n\s+Oficial\s+del\s+Estado", clause[:other.start()]):
        reason = f"se cuenta desde la publicación en otro diario («{other.group(0)}»)"
    elif published is None and not fixed:
        reason = "el documento no tiene fecha de publicación"
    elif (after := _AFTER.search(clause[:200])) and published is not None:
        quantity = _count(after.group(1)) or 0
        unit = _unit(after.group(2))
        day = (published + timedelta(days=quantity) if unit == "días"
               else add_months(published, quantity * (12 if unit == "años" else 1)))
    elif (one := _AFTER_ONE.search(clause[:200])) and published is not None:
        day = add_months(published, 12 if one.group(1).lower() == "año" else 1)
    elif _NEXT_DAY.search(clause[:160]) and published is not None:
        day = published + timedelta(days=1)
    elif _SAME_DAY.search(clause[:160]) and published is not None:
        day = published
    elif fixed is not None and fixed_match is not None:
        day = fixed
    else:
        reason = "la disposición no da una fecha calculable"
    record["date"] = day.isoformat() if day else None
    if day is None:
        record["reason"] = reason
    return record


def _is_self(rest: str, own_kind: str) -> bool:
    """``rest`` (the words after "publicación"/"entrada en vigor") names this document."""
    if _SELF_REFERENCE.match(rest):
        return True
    return bool(own_kind) and re.match(rf"\s*(?:de\s+la|del|de\s+el)\s+{re.escape(own_kind)}\b",
                                       rest, re.IGNORECASE) is not None


def _deadline_start(after: str, published: date | None, in_force: date | None,
                    own_extract: bool, own_kind: str = "",
                    before: str = "") -> tuple[date | None, str, str]:
    """(start day, what it is, reason when unknown) of a deadline, from the words after it."""
    pub = _FROM_PUBLICATION.search(after)
    force = _FROM_IN_FORCE.search(after)
    event = _FROM_EVENT.search(after)
    first = min((m for m in (pub, force, event) if m), key=lambda m: m.start(), default=None)
    if first is None:
        return None, "", "el plazo no dice desde cuándo se cuenta"
    if first is pub and pub is not None:
        rest = pub.group(1) or ""
        bare = not re.match(r"\s*(?:en|de|del)\s", rest, re.IGNORECASE)
        if bare and _OTHER_VENUE.search(before):
            return None, "", ("se cuenta desde otra publicación (la que la frase menciona: "
                              f"«{_OTHER_VENUE.search(before).group(0)}»)")  # type: ignore[union-attr]
        if _is_self(rest, own_kind) or (own_extract and re.match(
                r"\s*del\s+extracto", rest, re.IGNORECASE)):
            if published is None:
                return None, "publicación", "el documento no tiene fecha de publicación"
            return published, "publicación", ""
        return None, "", f"se cuenta desde otra publicación («{' '.join(pub.group(0).split())}»)"
    if first is force and force is not None:
        rest = force.group(1) or ""
        if _is_self(rest, own_kind):
            if in_force is None:
                return None, "entrada en vigor", "la fecha de entrada en vigor no se conoce"
            return in_force, "entrada en vigor", ""
        said = " ".join(force.group(0).split())
        return None, "", f"se cuenta desde otra entrada en vigor («{said}»)"
    text = " ".join(first.group(0).split())
    return None, "", f"se cuenta desde un hecho sin fecha conocida («{text}»)"


def deadlines(source: AnchorSource, published: date | None, in_force: date | None,
              cal: Calendar, own_extract: bool = False,
              own_kind: str = "") -> list[dict[str, Any]]:
    text = source.text
    found = []
    for match in PLAZO.finditer(text):
        quantity = _count(match.group(1))
        if quantity is None:
            continue
        unit = _unit(match.group(2))
        qualifier = (match.group(3) or "").lower().replace("á", "a")
        qualifier = "hábiles" if qualifier.startswith("h") else qualifier
        start, end = _sentence_bounds(text, match.start(), match.end())
        after = text[match.end():end]
        begin, origin, reason = _deadline_start(after[:200], published, in_force, own_extract,
                                                own_kind, text[start:match.start()])
        record: dict[str, Any] = {
            "text": " ".join(match.group(0).split()), "quantity": quantity, "unit": unit,
            "qualifier": qualifier or ("hábiles" if unit == "días" else ""),
            "from": None, "date": None, "source": _anchor(source, match.start(), match.end())}
        if begin is not None:
            record["from"] = {"event": origin, "date": begin.isoformat()}
            last, how = deadline_date(begin, quantity, unit, qualifier, cal)
            record["date"] = last.isoformat() if last else None
            record["computation"] = how
            if last is None:
                record["reason"] = how
        else:
            record["reason"] = reason
        found.append(record)
    return found


def amounts(source: AnchorSource, limit: int = 50) -> list[dict[str, Any]]:
    text = source.text
    found = []
    for fact in extract_facts(text, ["amount"])[:limit]:
        start, end = _sentence_bounds(text, fact.start, fact.end)
        found.append({"text": " ".join(fact.text.split()), "value": float(fact.key),
                      "concepto": " ".join(text[start:end].split())[:300],
                      "source": _anchor(source, fact.start, fact.end)})
    return found


def references(doc: SourceDocument) -> list[dict[str, Any]]:
    found = []
    for ref in doc.references:
        label = "Referencias anteriores" if ref.direction == "anterior" else \
            "Referencias posteriores"
        quote = " ".join(f"{ref.relation} {ref.text}".split())
        found.append({"relation": ref.relation, "target_id": ref.target_id, "text": ref.text,
                      "direction": ref.direction,
                      "source": {"path": f"Análisis › {label}", "start": None, "end": None,
                                 "quote": quote}})
    return found


def facts_card(doc: SourceDocument, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """``boeflow facts FILE|ID --json``: the document's entry into force, deadlines,
    amounts and references, each with its source anchor."""
    source = (AnchorSource(text=doc.parsed_text, units=doc.units) if doc.parsed_text
              else AnchorSource(text=doc.text))
    card: dict[str, Any] = {"boe_id": doc.id,
                            "published": doc.published.isoformat() if doc.published else None,
                            "entrada_en_vigor": None, "plazos": [], "importes": [],
                            "referencias": references(doc)}
    if not source.text.strip():
        card["entrada_en_vigor"] = {"text": "", "date": None, "source": None,
                                    "reason": "el documento no tiene texto"}
        return card
    in_force = entry_into_force(source, doc.published)
    card["entrada_en_vigor"] = in_force
    in_force_day = (date.fromisoformat(in_force["date"])
                    if in_force and in_force.get("date") else None)
    own_extract = doc.title.lower().startswith("extracto")
    kind = (doc.rango or doc.title.split(" ")[0]).strip().lower()
    card["plazos"] = deadlines(source, doc.published, in_force_day, Calendar(region),
                               own_extract, kind)
    card["importes"] = amounts(source)
    return card
