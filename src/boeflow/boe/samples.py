"""The recorded BOE publications shipped with the repository, as one directory the replay
server serves (``sumario/``, ``documents/``, ``pdf/``), and the composed many-document day.

``samples/boe/`` holds a few publications loose (the tests read them directly) and the rest
packed in ``archive/boe-2024-2025.tar.xz`` (about 190 daily sumarios and 100 item XMLs
compress tenfold); ``archive/SHA256SUMS`` lists every member's checksum, checked when it is
unpacked.

The composed day (:data:`COMPOSED_DAY`, a Sunday: the BOE never publishes on Sundays, so it
cannot be mistaken for a real day) lists every recorded item document under a sumario built
from their real listing: section, department and epígrafe as the recorded sumario of their
own day lists them, or their document metadata (section, department, no epígrafe) when that
sumario is not recorded. Its
identifier (:data:`COMPOSED_SUMARIO_ID`) and publication name say it is composed, and the
digest shows both.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from boeflow.boe.document import parse_document_meta
from boeflow.boe.sumario import SumarioItem, SumarioSource, parse_sumario
from boeflow.core.errors import BoeflowError
from boeflow.core.sections import SECTION_CODES, SECTIONS, section_rank
from boeflow.core.xmlsafe import parse_xml_bytes

ARCHIVE = Path("archive") / "boe-2024-2025.tar.xz"
SUMS = Path("archive") / "SHA256SUMS"
COMPOSED_DAY = date(2025, 7, 6)
COMPOSED_SUMARIO_ID = "BOE-S-2025-COMPUESTO"
COMPOSED_PUBLICATION = "BOE (día compuesto para pruebas: documentos reales de varios días)"
_SECTION_NAMES = {section.code: section.sumario_name for section in SECTIONS}


class SampleError(BoeflowError):
    """The shipped samples are missing or do not match their checksums."""


@dataclass(frozen=True)
class RecordedDay:
    day: date
    path: Path  # the sumario file inside the unpacked root

    @property
    def name(self) -> str:
        return f"{self.day:%Y-%m-%d}"


def archived_members(samples: Path) -> dict[str, str]:
    """Archive member name → sha256, from ``SHA256SUMS``."""
    sums = samples / SUMS
    if not sums.is_file():
        raise SampleError(f"{sums} is missing")
    out: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest
    return out


def recorded_sumario_days(samples: Path) -> list[date]:
    """Every day with a recorded XML sumario (loose or archived), in date order."""
    names = [p.name for p in (samples / "sumario").glob("BOE-S-*.xml")]
    names += [Path(n).name for n in archived_members(samples) if n.startswith("sumario/")]
    return sorted({datetime.strptime(n[6:14], "%Y%m%d").date() for n in names})


def unpack(samples: Path, target: Path) -> Path:
    """Build ``target`` (``sumario/``, ``documents/``, ``pdf/``): the loose samples linked,
    the archive unpacked and every member checked against ``SHA256SUMS``. Returns target."""
    expected = archived_members(samples)
    archive = samples / ARCHIVE
    if not archive.is_file():
        raise SampleError(f"{archive} is missing")
    for folder in ("sumario", "documents"):
        (target / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((samples / folder).glob("*")):
            link = target / folder / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    if not (target / "pdf").exists():
        (target / "pdf").symlink_to((samples / "pdf").resolve())
    seen: set[str] = set()
    with tarfile.open(archive, mode="r:xz") as tar:
        for member in tar:
            if member.name not in expected or not member.isfile():
                raise SampleError(f"{archive.name}: unexpected member {member.name!r}")
            handle = tar.extractfile(member)
            assert handle is not None
            data = handle.read()
            if hashlib.sha256(data).hexdigest() != expected[member.name]:
                raise SampleError(f"{archive.name}: {member.name} does not match SHA256SUMS")
            destination = target / member.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
            seen.add(member.name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise SampleError(f"{archive.name} lacks {', '.join(missing[:5])}")
    return target


def recorded_days(root: Path) -> list[RecordedDay]:
    """The XML sumarios of an unpacked root, in date order."""
    days = []
    for path in sorted((root / "sumario").glob("BOE-S-*.xml")):
        match = re.fullmatch(r"BOE-S-(\d{8})\.xml", path.name)
        if match:
            days.append(RecordedDay(datetime.strptime(match.group(1), "%Y%m%d").date(), path))
    return days


# --- the composed day -----------------------------------------------------------------------

def _listed_items(root: Path) -> dict[str, SumarioItem]:
    """How the recorded sumarios list each item (the first listing wins)."""
    listed: dict[str, SumarioItem] = {}
    for recorded in recorded_days(root):
        data = recorded.path.read_bytes()
        source: SumarioSource = "api-xml" if b"<response>" in data[:200] else "legacy"
        for item in parse_sumario(data, source).items:
            listed.setdefault(item.id, item)
    return listed


def _section_of(meta_section: str | None, subsection: str | None) -> str:
    code = (meta_section or "").strip().upper() + (subsection or "").strip().upper()
    return code if code in _SECTION_NAMES else (meta_section or "3").strip().upper()


def composed_items(root: Path) -> list[SumarioItem]:
    """Every recorded item document as the composed sumario lists it, in BOE order (section,
    then department, then the documents' own order)."""
    listed = _listed_items(root)
    items: list[SumarioItem] = []
    for path in sorted((root / "documents").glob("BOE-*.xml")):
        data = path.read_bytes()
        document = parse_xml_bytes(data)
        meta = parse_document_meta(document)
        known = listed.get(meta.id)
        if known is not None:
            items.append(known)
            continue
        section = _section_of(document.findtext("metadatos/seccion"),
                              document.findtext("metadatos/subseccion"))
        department = document.find("metadatos/departamento")
        first = document.findtext("metadatos/pagina_inicial")
        last = document.findtext("metadatos/pagina_final")
        items.append(SumarioItem(
            id=meta.id, title=meta.title, section=section,
            section_name=_SECTION_NAMES.get(section, section),
            department=(meta.department or "").upper(),
            department_code=department.get("codigo") if department is not None else None,
            epigrafe=None, diario="1",  # no recorded listing: no epígrafe is invented
            control=None, url_pdf=meta.url_pdf, pdf_size=None,
            first_page=int(first) if first and first.isdigit() else None,
            last_page=int(last) if last and last.isdigit() else None, page_count=None,
            url_html=meta.url_html, url_xml=meta.url_xml))
    rank = {code: section_rank(code) for code in SECTION_CODES}
    departments: dict[tuple[str, str], int] = {}
    for item in sorted(items, key=lambda i: rank.get(i.section, len(rank))):
        departments.setdefault((item.section, item.department), len(departments))
    return sorted(items, key=lambda i: (rank.get(i.section, len(rank)),
                                        departments[(i.section, i.department)]))


def _url(value: str | None) -> str:
    return escape((value or "").replace("https://www.boe.es", ""))


def composed_sumario_xml(items: list[SumarioItem], day: date = COMPOSED_DAY) -> bytes:
    """The open-data API XML of the composed day (same layout as a recorded sumario)."""
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<response><status><code>200</code>"
           "<text>ok</text></status><data><sumario><metadatos>",
           f"<publicacion>{escape(COMPOSED_PUBLICATION)}</publicacion>",
           f"<fecha_publicacion>{day:%Y%m%d}</fecha_publicacion></metadatos>",
           '<diario numero="1"><sumario_diario>',
           f"<identificador>{COMPOSED_SUMARIO_ID}</identificador>",
           "</sumario_diario>"]
    section = department = epigrafe = None
    opened: list[str] = []  # the open seccion / departamento / epigrafe, outermost first

    def close(level: int) -> None:
        """Close the open elements from ``level`` (0 seccion, 1 departamento, 2 epigrafe) in."""
        while len(opened) > level:
            out.append(f"</{opened.pop()}>")

    for item in items:
        if item.section != section:
            close(0)
            section, department, epigrafe = item.section, None, None
            out.append(f"<seccion codigo={quoteattr(item.section)} "
                       f"nombre={quoteattr(item.section_name)}>")
            opened.append("seccion")
        if item.department != department:
            close(1)
            department, epigrafe = item.department, None
            out.append(f"<departamento codigo={quoteattr(item.department_code or '')} "
                       f"nombre={quoteattr(item.department)}>")
            opened.append("departamento")
        if item.epigrafe != epigrafe:
            close(2)
            epigrafe = item.epigrafe
            if epigrafe is not None:
                out.append(f"<epigrafe nombre={quoteattr(epigrafe)}>")
                opened.append("epigrafe")
        pages = (f' pagina_inicial="{item.first_page}" pagina_final="{item.last_page}"'
                 if item.first_page is not None and item.last_page is not None else "")
        size = f' szBytes="{item.pdf_size}"' if item.pdf_size else ""
        out.append(f"<item><identificador>{escape(item.id)}</identificador>"
                   + (f"<control>{escape(item.control)}</control>" if item.control else "")
                   + f"<titulo>{escape(item.title)}</titulo>"
                   f"<url_pdf{size}{pages}>{_url(item.url_pdf)}</url_pdf>"
                   f"<url_html>{_url(item.url_html)}</url_html>"
                   f"<url_xml>{_url(item.url_xml)}</url_xml></item>")
    close(0)
    out.append("</diario></sumario></data></response>")
    return ("\n".join(out) + "\n").encode("utf-8")


def compose_day(root: Path, day: date = COMPOSED_DAY) -> list[SumarioItem]:
    """Write the composed day's sumario into an unpacked root; returns its items."""
    items = composed_items(root)
    target = root / "sumario" / f"BOE-S-{day:%Y%m%d}.xml"
    if target.is_symlink() or target.exists():
        raise SampleError(f"{target.name} is a recorded day; the composed day needs its own")
    target.write_bytes(composed_sumario_xml(items, day))
    return items


def replay_root(samples: Path, target: Path, *, composed: bool = True) -> Path:
    """Unpack the samples into ``target`` and, by default, add the composed day."""
    if target.exists():
        shutil.rmtree(target)
    unpack(samples, target)
    if composed:
        compose_day(target)
    return target
