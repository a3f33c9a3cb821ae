"""The BOE's sections, defined once: code, numeral, the name boeflow shows, the name the
sumario prints, whether a title is enough (listed compactly in the digest), and the
sumario's rule for choosing sections (``2`` chooses 2A and 2B, ``5`` chooses 5A-5C)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    code: str
    numeral: str
    name: str
    sumario_name: str
    compact: bool  # appointments, competitions, courts, announcements: a title is enough


SECTIONS: tuple[Section, ...] = (
    Section("1", "I", "I. Disposiciones generales", "I. Disposiciones generales", False),
    Section("2A", "II-A", "II-A. Autoridades y personal: nombramientos, situaciones e "
            "incidencias", "II. Autoridades y personal. - A. Nombramientos, situaciones e "
            "incidencias", False),
    Section("2B", "II-B", "II-B. Autoridades y personal: oposiciones y concursos",
            "II. Autoridades y personal. - B. Oposiciones y concursos", True),
    Section("3", "III", "III. Otras disposiciones", "III. Otras disposiciones", False),
    Section("4", "IV", "IV. Administración de Justicia", "IV. Administración de Justicia",
            True),
    Section("5A", "V-A", "V-A. Anuncios: contratación del sector público",
            "V. Anuncios. - A. Contratación del Sector Público", True),
    Section("5B", "V-B", "V-B. Anuncios: otros anuncios oficiales",
            "V. Anuncios. - B. Otros anuncios oficiales", True),
    Section("5C", "V-C", "V-C. Anuncios particulares", "V. Anuncios. - C. Anuncios particulares",
            True),
    Section("T", "T.C.", "T.C. Tribunal Constitucional", "Tribunal Constitucional", False),
)
SECTION_CODES: tuple[str, ...] = tuple(s.code for s in SECTIONS)
BY_CODE = {s.code: s for s in SECTIONS}


def section_rank(code: str) -> int:
    """The section's place in the BOE's order (unknown codes last)."""
    return SECTION_CODES.index(code) if code in SECTION_CODES else len(SECTION_CODES)


def in_sections(code: str, chosen: Iterable[str] | None) -> bool:
    """Whether a section is among those chosen (none chosen: every section)."""
    wanted = {s.strip().upper() for s in chosen or () if s.strip()}
    return not wanted or code.upper() in wanted or code.upper().rstrip("ABC") in wanted
