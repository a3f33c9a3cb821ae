"""Metadata recovered from presentation formats (PDF, HTML), which lack ``<metadatos>``."""

from __future__ import annotations

import re
from datetime import date

_MONTHS = {name: number for number, name in enumerate(
    ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
     "octubre", "noviembre", "diciembre"), start=1)}
_SPANISH_DATE = re.compile(r"(\d{1,2}) de (" + "|".join(_MONTHS) + r") de (\d{4})", re.I)
_NUMERIC_DATE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "T": 0}
# Longest first: "Real Decreto-ley" before "Real Decreto".
_RANGOS = ("Ley Orgánica", "Real Decreto Legislativo", "Real Decreto-ley", "Real Decreto",
           "Decreto Legislativo", "Decreto-ley", "Decreto", "Ley", "Orden", "Resolución",
           "Instrucción", "Circular", "Acuerdo", "Corrección de errores", "Corrección",
           "Anuncio", "Extracto", "Edicto", "Constitución")
_NUMBER = re.compile(r"^\s*((?:[A-Z]{2,5}/)?\d+/\d{4})")


def spanish_date(text: str) -> date | None:
    match = _SPANISH_DATE.search(text)
    if match:
        return date(int(match.group(3)), _MONTHS[match.group(2).lower()], int(match.group(1)))
    numeric = _NUMERIC_DATE.search(text)
    if numeric:
        return date(int(numeric.group(3)), int(numeric.group(2)), int(numeric.group(1)))
    return None


def section_code(roman: str, letter: str | None = None) -> str | None:
    """"V", "A" → "5A"; "III" → "3" (the codes of the sumario API)."""
    number = _ROMAN.get(roman.upper())
    if number is None:
        return None
    return f"{number or 'T'}{(letter or '').upper()}"


def rango_and_number(title: str) -> tuple[str | None, str | None]:
    """"Orden INT/1265/2024, de 12 de…" → ("Orden", "INT/1265/2024")."""
    for rango in _RANGOS:
        if title.lower().startswith(rango.lower()):
            number = _NUMBER.match(title[len(rango):])
            return rango, (number.group(1) if number else None)
    return None, None


def pdf_url(doc_id: str, published: date | None, base: str = "https://www.boe.es") -> str | None:
    """The BOE's PDF address pattern, ``/boe/dias/YYYY/MM/DD/pdfs/<id>.pdf``."""
    if published is None:
        return None
    return f"{base}/boe/dias/{published:%Y/%m/%d}/pdfs/{doc_id}.pdf"
