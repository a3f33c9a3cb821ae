"""Norm citations: the one table and the one set of patterns that links, watchlists and search
share.

A citation names a norm as lawyers write it: a BOE id (``BOE-A-2015-10565``), an ELI URI
(``https://www.boe.es/eli/es/l/2015/10/01/39``), a rango with its number
(``Ley 39/2015``, ``L 39/2015``, ``LO 3/2018``, ``RD 887/2006``, ``RDL 6/2024``,
``RDLeg 1/2020``, ``Orden INT/1265/2024``), a resolution by date and organ
(``Resolución de 12 de noviembre de 2024, de la Mutualidad General…``) or a common acronym
(``LPAC``, ``LCSP``, ``LBRL``…, :data:`NORMS`). :func:`find_citations` finds them in text;
:func:`resolve_offline` gives the BOE id when the citation alone (or the table) determines it;
the search resolves the rest against the ``boe-documents`` index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from boeflow.core.ids import BOE_ID_PATTERN
from boeflow.core.textnorm import fold

CitationKind = Literal["boe_id", "eli", "norm", "orden", "resolucion", "acronym"]


@dataclass(frozen=True)
class Norm:
    """A norm people cite by name: its BOE id, rango, official number and acronyms."""

    boe_id: str
    rango: str
    number: str | None  # "39/2015"; None for the Constitution and the old codes
    title: str
    acronyms: tuple[str, ...] = ()


# The norms of the recorded consolidated texts (samples/boe/consolidada) and the ones Spanish
# lawyers cite by acronym. Acronyms are matched case-sensitively (``ET``, not "et").
NORMS: tuple[Norm, ...] = (
    Norm("BOE-A-1978-31229", "Constitución", None, "Constitución Española", ("CE",)),
    Norm("BOE-A-1889-4763", "Real Decreto", None, "Código Civil", ("CC",)),
    Norm("BOE-A-1882-6036", "Real Decreto", None, "Ley de Enjuiciamiento Criminal",
         ("LECrim", "LECRIM")),
    Norm("BOE-A-1985-5392", "Ley", "7/1985", "Ley 7/1985, de 2 de abril, Reguladora de las "
         "Bases del Régimen Local", ("LBRL",)),
    Norm("BOE-A-1985-12666", "Ley Orgánica", "6/1985", "Ley Orgánica 6/1985, de 1 de julio, "
         "del Poder Judicial", ("LOPJ",)),
    Norm("BOE-A-1992-28740", "Ley", "37/1992", "Ley 37/1992, de 28 de diciembre, del "
         "Impuesto sobre el Valor Añadido", ("LIVA",)),
    Norm("BOE-A-1993-25359", "Real Decreto Legislativo", "1/1993", "Texto refundido de la Ley "
         "del Impuesto sobre Transmisiones Patrimoniales y Actos Jurídicos Documentados",
         ("TRLITPAJD",)),
    Norm("BOE-A-1998-16718", "Ley", "29/1998", "Ley 29/1998, de 13 de julio, reguladora de la "
         "Jurisdicción Contencioso-administrativa", ("LJCA",)),
    Norm("BOE-A-2000-323", "Ley", "1/2000", "Ley 1/2000, de 7 de enero, de Enjuiciamiento "
         "Civil", ("LEC",)),
    Norm("BOE-A-2003-20254", "Ley", "33/2003", "Ley 33/2003, de 3 de noviembre, del "
         "Patrimonio de las Administraciones Públicas", ("LPAP",)),
    Norm("BOE-A-2003-20977", "Ley", "38/2003", "Ley 38/2003, de 17 de noviembre, General de "
         "Subvenciones", ("LGS",)),
    Norm("BOE-A-2003-21614", "Ley", "47/2003", "Ley 47/2003, de 26 de noviembre, General "
         "Presupuestaria", ("LGP",)),
    Norm("BOE-A-2003-23186", "Ley", "58/2003", "Ley 58/2003, de 17 de diciembre, General "
         "Tributaria", ("LGT",)),
    Norm("BOE-A-2004-4214", "Real Decreto Legislativo", "2/2004", "Texto refundido de la Ley "
         "Reguladora de las Haciendas Locales", ("TRLRHL", "LRHL")),
    Norm("BOE-A-2006-13371", "Real Decreto", "887/2006", "Real Decreto 887/2006, de 21 de "
         "julio, Reglamento de la Ley General de Subvenciones", ("RLGS",)),
    Norm("BOE-A-2006-20764", "Ley", "35/2006", "Ley 35/2006, de 28 de noviembre, del Impuesto "
         "sobre la Renta de las Personas Físicas", ("LIRPF",)),
    Norm("BOE-A-2013-12887", "Ley", "19/2013", "Ley 19/2013, de 9 de diciembre, de "
         "transparencia, acceso a la información pública y buen gobierno", ("LTAIBG",)),
    Norm("BOE-A-2015-7730", "Ley", "17/2015", "Ley 17/2015, de 9 de julio, del Sistema "
         "Nacional de Protección Civil", ()),
    Norm("BOE-A-2015-10565", "Ley", "39/2015", "Ley 39/2015, de 1 de octubre, del "
         "Procedimiento Administrativo Común de las Administraciones Públicas", ("LPAC",
                                                                                 "LPACAP")),
    Norm("BOE-A-2015-10566", "Ley", "40/2015", "Ley 40/2015, de 1 de octubre, de Régimen "
         "Jurídico del Sector Público", ("LRJSP",)),
    Norm("BOE-A-2015-11430", "Real Decreto Legislativo", "2/2015", "Texto refundido de la "
         "Ley del Estatuto de los Trabajadores", ("ET", "TRET")),
    Norm("BOE-A-2015-11724", "Real Decreto Legislativo", "8/2015", "Texto refundido de la "
         "Ley General de la Seguridad Social", ("LGSS", "TRLGSS")),
    Norm("BOE-A-2017-12902", "Ley", "9/2017", "Ley 9/2017, de 8 de noviembre, de Contratos "
         "del Sector Público", ("LCSP",)),
    Norm("BOE-A-2018-16673", "Ley Orgánica", "3/2018", "Ley Orgánica 3/2018, de 5 de "
         "diciembre, de Protección de Datos Personales y garantía de los derechos digitales",
         ("LOPDGDD",)),
    Norm("BOE-A-2020-4859", "Real Decreto Legislativo", "1/2020", "Texto refundido de la Ley "
         "Concursal", ("TRLC",)),
    Norm("BOE-A-2021-5032", "Real Decreto", "203/2021", "Real Decreto 203/2021, de 30 de "
         "marzo, Reglamento de actuación y funcionamiento del sector público por medios "
         "electrónicos", ()),
)
BY_ID = {norm.boe_id: norm for norm in NORMS}
BY_ACRONYM = {acronym: norm for norm in NORMS for acronym in norm.acronyms}
BY_NUMBER = {(norm.rango, norm.number): norm for norm in NORMS if norm.number}

# Rango words and their abbreviations (folded, so "Orgánica" and "organica" both match),
# longest first so "real decreto-ley" is not read as "real decreto".
RANGO_WORDS: tuple[tuple[str, str], ...] = (
    (r"real\s+decreto\s+legislativo|r\.?\s?d\.?\s?leg(?:islativo)?\.?|rdlg|rdleg",
     "Real Decreto Legislativo"),
    (r"real\s+decreto[\s-]+ley|r\.?\s?d\.?[\s-]?ley|rdl|r\.d\.l\.", "Real Decreto-ley"),
    (r"real\s+decreto|r\.\s?d\.|rd", "Real Decreto"),
    (r"decreto\s+legislativo|dleg", "Decreto Legislativo"),
    (r"decreto[\s-]+ley", "Decreto-ley"),
    (r"ley\s+organica|l\.\s?o\.|lo", "Ley Orgánica"),
    (r"ley|l\.?", "Ley"),
    (r"decreto", "Decreto"),
)
_RANGO_ALT = "|".join(f"(?P<r{n}>{pattern})" for n, (pattern, _) in enumerate(RANGO_WORDS))
# Patterns run on folded text (lowercase, no accents), same offsets as the original for the
# Spanish text they see; acronyms run on the original.
NORM_RE = re.compile(rf"(?<![\w/])(?:{_RANGO_ALT})\s*(?:n(?:u|º|o)?\.?\s*)?"
                     rf"(?P<num>\d{{1,4}})/(?P<year>(?:19|20)\d{{2}})(?![\w/])")
ORDEN_RE = re.compile(r"(?<![\w/])(?:orden(?:\s+ministerial)?|o\.)\s*(?P<dept>[a-z]{2,5})/"
                      r"(?P<num>\d{1,5})/(?P<year>(?:19|20)\d{2})(?![\w/])")
MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre")
RESOLUCION_RE = re.compile(
    rf"(?<!\w)resolucion\s+de\s+(?P<day>\d{{1,2}})\s+de\s+(?P<month>{'|'.join(MONTHS)})\s+"
    r"de\s+(?P<year>(?:19|20)\d{2})(?:,?\s+(?:de\s+la|del|de)\s+(?P<organ>[^,;.]{3,160}?))?"
    r"(?=,|;|\.|\s+por\s+la\s+que|\s+sobre\s|$)")
BOE_ID_RE = re.compile(rf"(?<![\w-])(?P<id>{BOE_ID_PATTERN.replace('[A-Z]', '[A-Za-z]')})"
                       r"(?![\w-])", re.I)
ELI_RE = re.compile(r"(?:https?://)?(?:www\.)?boe\.es/eli/(?P<juris>es(?:-[a-z]{2})?)/"
                    r"(?P<type>[a-z]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<num>[^/\s]+)"
                    r"(?P<rest>(?:/[^\s/]+)*)/?", re.I)
ACRONYM_RE = re.compile(r"(?<![\w/-])(?P<acr>" + "|".join(
    sorted((re.escape(a) for a in BY_ACRONYM), key=len, reverse=True)) + r")(?![\w/-])")
CORRECTION_RE = re.compile(r"(?:correccion\s+de\s+(?:errores|erratas)|corregid[oa]s?\s+(?:los\s+)?"
                           r"(?:errores|erratas)|(?:errores|erratas))(?:\s+(?:de\s+la|del|de))?"
                           r"\s*$")
# ELI document types and the rango they stand for.
ELI_TYPES = {"c": "Constitución", "l": "Ley", "lo": "Ley Orgánica", "rd": "Real Decreto",
             "rdl": "Real Decreto-ley", "rdlg": "Real Decreto Legislativo", "d": "Decreto",
             "dl": "Decreto-ley", "dlg": "Decreto Legislativo", "o": "Orden",
             "res": "Resolución"}


@dataclass(frozen=True)
class Citation:
    """One citation found in a text: where (``start``, ``end``), what it names and, when known
    without the index, the BOE id. ``correction``: the text asks for the correction of errors
    of the cited norm ("corrección de errores del RDL 6/2024")."""

    kind: CitationKind
    text: str
    start: int
    end: int
    boe_id: str | None = None
    rango: str | None = None
    number: str | None = None  # "6/2024", "INT/1265/2024"
    day: date | None = None  # disposition date (ELI, Resolución)
    organ: str | None = None
    eli: str | None = None
    correction: bool = False

    @property
    def label(self) -> str:
        if self.rango and self.number:
            return f"{self.rango} {self.number}"
        return self.text


def _rango_of(match: re.Match[str]) -> str:
    for n, (_, rango) in enumerate(RANGO_WORDS):
        if match.group(f"r{n}"):
            return rango
    raise AssertionError("a NORM_RE match always names a rango")


def normalise_eli(uri: str) -> str:
    """The ELI of a norm as boe-documents stores it: https, www.boe.es, no language, format,
    consolidated-version or trailing-slash suffix; a corrigendum keeps its own ELI."""
    match = ELI_RE.search(uri)
    if not match:
        return uri.strip()
    base = (f"https://www.boe.es/eli/{match['juris'].lower()}/{match['type'].lower()}/"
            f"{match['y']}/{match['m']}/{match['d']}/{match['num']}")
    rest = [p for p in match["rest"].split("/") if p]
    if len(rest) >= 2 and rest[0] == "corrigendum":
        base += f"/corrigendum/{rest[1]}"
    return base


def find_citations(text: str) -> list[Citation]:
    """Every citation in ``text``, in order, overlaps resolved for the longest match."""
    folded = fold(text)
    if len(folded) != len(text):  # folding changed lengths (rare ligatures): keep offsets
        folded = "".join(fold(ch)[:1] or ch for ch in text)
    found: list[Citation] = []
    for m in BOE_ID_RE.finditer(text):
        boe_id = m["id"].upper()
        found.append(Citation("boe_id", m.group(), m.start(), m.end(), boe_id=boe_id))
    for m in ELI_RE.finditer(text):
        eli = normalise_eli(m.group())
        number = m["num"]
        kind_rango = ELI_TYPES.get(m["type"].lower())
        try:
            day = date(int(m["y"]), int(m["m"]), int(m["d"]))
        except ValueError:
            day = None
        # A corrigendum's ELI names the correction itself, not the corrected norm.
        numeric = re.fullmatch(r"\d+", number) and "/corrigendum/" not in eli
        found.append(Citation(
            "eli", m.group(), m.start(), m.end(), rango=kind_rango,
            number=f"{number}/{m['y']}" if numeric else None, day=day, eli=eli))
    for m in NORM_RE.finditer(folded):
        rango = _rango_of(m)
        number = f"{int(m['num'])}/{m['year']}"
        norm = BY_NUMBER.get((rango, number))
        found.append(Citation("norm", text[m.start():m.end()], m.start(), m.end(),
                              boe_id=norm.boe_id if norm else None, rango=rango,
                              number=number))
    for m in ORDEN_RE.finditer(folded):
        number = f"{m['dept'].upper()}/{int(m['num'])}/{m['year']}"
        found.append(Citation("orden", text[m.start():m.end()], m.start(), m.end(),
                              rango="Orden", number=number))
    for m in RESOLUCION_RE.finditer(folded):
        try:
            day = date(int(m["year"]), MONTHS.index(m["month"]) + 1, int(m["day"]))
        except ValueError:
            continue
        organ = text[m.start("organ"):m.end("organ")].strip() if m["organ"] else None
        found.append(Citation("resolucion", text[m.start():m.end()], m.start(), m.end(),
                              rango="Resolución", day=day, organ=organ))
    for m in ACRONYM_RE.finditer(text):
        norm = BY_ACRONYM[m["acr"]]
        found.append(Citation("acronym", m.group(), m.start(), m.end(), boe_id=norm.boe_id,
                              rango=norm.rango, number=norm.number))
    found.sort(key=lambda c: (c.start, -(c.end - c.start)))
    kept: list[Citation] = []
    for citation in found:
        if kept and citation.start < kept[-1].end:
            continue  # inside a longer citation ("Orden INT/1265/2024" holds no "L 1265")
        before = folded[:citation.start].rstrip()
        if CORRECTION_RE.search(before[-60:]):
            citation = Citation(**{**citation.__dict__, "correction": True})
        kept.append(citation)
    return kept


def resolve_offline(citation: Citation) -> str | None:
    """The BOE id a citation names when it is known without the index."""
    if citation.boe_id:
        return citation.boe_id
    if citation.rango and citation.number:
        norm = BY_NUMBER.get((citation.rango, citation.number))
        if norm:
            return norm.boe_id
    return None


def resolve_law(text: str) -> str | None:
    """The BOE id of a law named by a BOE id, ELI URI, citation or acronym, when the text is
    just that (a watchlist entry); None when it names no norm this table or grammar knows."""
    citations = find_citations(text.strip())
    if len(citations) != 1:
        return None
    return resolve_offline(citations[0])


def strip_citations(text: str, citations: list[Citation]) -> str:
    """The free text around the citations."""
    out, last = [], 0
    for citation in citations:
        out.append(text[last:citation.start])
        last = citation.end
    out.append(text[last:])
    return " ".join("".join(out).split())
