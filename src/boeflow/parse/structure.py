"""Legal structure shared by the XML, HTML and PDF parsers.

Each parser turns its input into a flat list of :class:`Block` (one paragraph, table, form
or image placeholder each, tagged with a *role* taken from the BOE CSS class or, for PDF,
recognised from the text). :func:`build_units` then applies one set of rules to find the
libro/título/capítulo/sección hierarchy, articles, disposiciones, annexes and signatures, so
every format yields the same :class:`~boeflow.core.types.Unit` sequence.

The document text is the blocks joined by a blank line (``"\\n\\n"``); inside a block,
single newlines separate table rows and form lines. Units are contiguous, in reading order,
and cover every block exactly once, so nothing of ``<texto>`` is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from boeflow.core.types import DisposicionKind, Unit, UnitKind

BLOCK_SEPARATOR = "\n\n"
# Elements whose content is code or styling, never text: dropped by every parser.
NON_TEXT_TAGS: frozenset[str] = frozenset({"script", "style", "noscript", "template"})

# Roles a parser may give a block.
HIERARCHY_ROLES: dict[str, UnitKind] = {
    "libro_num": "libro", "libro_tit": "libro", "libro": "libro",
    "titulo_num": "titulo", "titulo_tit": "titulo", "titulo": "titulo",
    "capitulo_num": "capitulo", "capitulo_tit": "capitulo", "capitulo": "capitulo",
    "seccion": "seccion", "subseccion": "subseccion",
    "anexo_num": "anexo", "anexo_tit": "anexo", "anexo": "anexo",
}
# Nesting depth of each structural kind (smaller encloses larger). A disposiciones group
# ("DISPOSICIONES ADICIONALES") sits where a libro would; an annex resets everything.
LEVEL = {"anexo": 0, "anexo_seccion": 5, "libro": 10, "grupo": 10, "titulo": 20,
         "capitulo": 30, "seccion": 40, "subseccion": 50}
STRUCTURAL_KINDS: frozenset[str] = frozenset(
    {"libro", "titulo", "capitulo", "seccion", "subseccion", "anexo"})

# BOE inline editorial markers, e.g. "[precepto]Primera." in the Constitución.
_MARKERS = re.compile(r"\[(?:precepto|encabezado)\]", re.IGNORECASE)
_DISPOSICION = re.compile(
    r"^«?\s*disposici[oó]n\s+(adicional|transitoria|derogatoria|final)\b", re.IGNORECASE)
_DISPOSICIONES_GROUP = re.compile(
    r"^disposiciones\s+(adicionales|transitorias|derogatorias|finales)\b", re.IGNORECASE)
_GROUP_KIND: dict[str, DisposicionKind] = {
    "adicionales": "adicional", "transitorias": "transitoria",
    "derogatorias": "derogatoria", "finales": "final"}


def clean_text(text: str) -> str:
    """Collapse every run of whitespace (incl. no-break and em spaces) to one space."""
    return " ".join(text.split())


def strip_markers(text: str) -> str:
    return clean_text(_MARKERS.sub("", text))


def disposicion_kind(heading: str) -> DisposicionKind | None:
    match = _DISPOSICION.match(heading)
    return match.group(1).lower() if match else None  # type: ignore[return-value]


def markdown_table(rows: Sequence[Sequence[str]], header_rows: int, caption: str = "") -> str:
    """A Markdown grid: optional caption line, header row(s), ``|---|`` rule, body rows.

    Every row keeps all its cells (spanned cells are repeated by the caller) so that a
    chunk holding some rows plus the header still reads as a table.
    """
    width = max((len(r) for r in rows), default=0)
    lines: list[str] = [caption] if caption else []
    for index, row in enumerate(rows):
        cells = [cell.replace("|", "\\|") for cell in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if index == header_rows - 1:
            lines.append("|" + "---|" * width)
    return "\n".join(lines)


_SPAN = re.compile(r"\s*\+?([0-9]{1,9})\s*")


def parse_span(value: object) -> int:
    """A ``colspan``/``rowspan`` attribute as a positive int; anything else (missing,
    non-numeric, zero, negative) counts as 1, as browsers do for invalid values."""
    match = _SPAN.fullmatch(value) if isinstance(value, str) else None
    return max(int(match.group(1)), 1) if match else 1


class TableTooLarge(ValueError):
    """A table whose expanded grid exceeds the configured number of cells."""


def expand_spans(grid: Sequence[Sequence[tuple[str, int, int]]], *, max_span: int = 1000,
                 max_cells: int = 200_000) -> list[list[str]]:
    """Lay out ``(text, colspan, rowspan)`` cells on a rectangular grid, repeating the text
    of spanned cells so each row stands alone.

    Spans come from the document and are clamped to the table's real size: a rowspan to the
    rows left in the table, a colspan to the widest row's number of cells, and both to
    ``max_span``; a grid of more than ``max_cells`` cells raises TableTooLarge. A hostile
    ``colspan="100000000"`` thus costs nothing.
    """
    widest = max((len(row) for row in grid), default=1) or 1
    col_limit = min(max_span, widest)
    out: list[list[str]] = []
    cells_total = 0
    carry: dict[int, tuple[str, int]] = {}  # column -> (text, rows still covered)
    for index, row in enumerate(grid):
        rows_left = len(grid) - index
        cells: list[str] = []
        col = 0
        queue = list(row)
        while queue or col in carry:
            if col in carry:
                text, left = carry.pop(col)
                cells.append(text)
                if left > 1:
                    carry[col] = (text, left - 1)
                col += 1
                continue
            text, colspan, rowspan = queue.pop(0)
            rowspan = min(max(rowspan, 1), rows_left, max_span)
            for _ in range(min(max(colspan, 1), col_limit)):
                cells.append(text)
                if rowspan > 1:
                    carry[col] = (text, rowspan - 1)
                col += 1
        cells_total += len(cells)
        out.append(cells)
        # Rows are padded to the widest one when rendered: bound that grid too.
        if cells_total > max_cells or len(out) * max(map(len, out)) > max_cells:
            raise TableTooLarge(f"table larger than {max_cells} cells after expanding its "
                                "spans (BOEFLOW_PARSE_MAX_TABLE_CELLS)")
    return out


@dataclass
class Block:
    """One paragraph-level piece of a document body."""

    role: str  # BOE class (parrafo, articulo, titulo_num, …) or table/image/form/quoted
    text: str
    caption: str = ""  # tables: their caption, used as the tabla unit's heading


@dataclass
class _Open:
    kind: UnitKind
    heading: str
    path: list[str]
    first: int
    last: int
    disposicion: DisposicionKind | None = None
    roles: list[str] = field(default_factory=list)


@dataclass
class _Frame:
    level: int
    heading: str
    group: DisposicionKind | None = None


class _Builder:
    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks = blocks
        self.stack: list[_Frame] = []
        self.current: _Open | None = None
        self.spans: list[_Open] = []
        self.has_provisions = any(b.role == "articulo" for b in blocks) or any(
            HIERARCHY_ROLES.get(b.role) in ("titulo", "capitulo")
            and _DISPOSICION.match(b.text) for b in blocks)
        self.seen_structure = False

    # -- helpers -------------------------------------------------------------------
    def path(self) -> list[str]:
        return [frame.heading for frame in self.stack]

    def close(self) -> None:
        if self.current is not None:
            self.spans.append(self.current)
            self.current = None

    def open(self, kind: UnitKind, heading: str, index: int, path: list[str] | None = None,
             disposicion: DisposicionKind | None = None) -> _Open:
        self.close()
        self.current = _Open(kind, heading, self.path() if path is None else path, index,
                             index, disposicion, [self.blocks[index].role])
        return self.current

    def append(self, index: int) -> None:
        assert self.current is not None
        self.current.last = index
        self.current.roles.append(self.blocks[index].role)

    def pop_to(self, level: int) -> None:
        while self.stack and self.stack[-1].level >= level:
            self.stack.pop()

    def in_annex(self) -> bool:
        return any(frame.level == LEVEL["anexo"] for frame in self.stack)

    # -- rules ---------------------------------------------------------------------
    def hierarchy(self, index: int, block: Block) -> None:
        kind = HIERARCHY_ROLES[block.role]
        text = strip_markers(block.text)
        cur = self.current
        # "TÍTULO I" + "De los derechos…" are two blocks of one heading.
        if (block.role.endswith("_tit") and cur is not None and cur.kind == kind
                and cur.first == cur.last and cur.roles[0] == f"{kind}_num"):
            cur.heading = f"{cur.heading}. {text}"
            self.stack[-1].heading = cur.heading
            self.append(index)
            return
        if kind in ("titulo", "capitulo"):
            group = _DISPOSICIONES_GROUP.match(text)
            if group:  # "[encabezado]DISPOSICIONES ADICIONALES": a group of disposiciones
                self.seen_structure = True
                self.pop_to(LEVEL["grupo"])
                self.open("capitulo", text, index)
                self.stack.append(_Frame(LEVEL["grupo"], text, _GROUP_KIND[group.group(1).lower()]))
                return
            if _DISPOSICION.match(text):  # "[encabezado]DISPOSICIÓN DEROGATORIA"
                self.provision(index, text)
                return
        self.seen_structure = True
        self.pop_to(LEVEL[kind])
        self.open(kind, text, index)
        self.stack.append(_Frame(LEVEL[kind], text))

    def provision(self, index: int, heading: str) -> None:
        """An article or disposición (``<p class="articulo">`` or equivalent)."""
        self.seen_structure = True
        sub = disposicion_kind(heading)
        group = next((f.group for f in reversed(self.stack) if f.group), None)
        if sub is not None:
            # Disposiciones stand outside títulos/capítulos; keep an annex and a group of
            # the same kind ("DISPOSICIONES TRANSITORIAS" › "Disposición transitoria…").
            while (self.stack and self.stack[-1].level > LEVEL["anexo_seccion"]
                   and self.stack[-1].group != sub):
                self.stack.pop()
            self.open("disposicion", heading, index, disposicion=sub)
        elif group is not None:
            self.open("disposicion", heading, index, disposicion=group)
        else:
            self.open("articulo", heading, index)

    def add(self, index: int, block: Block) -> None:
        role = block.role
        cur = self.current
        if role == "quoted":  # amending text in «…» belongs to its article
            if cur is None:
                self.open(self.loose_kind(), "", index)
            else:
                self.append(index)
        elif role in HIERARCHY_ROLES:
            self.hierarchy(index, block)
        elif role == "articulo":
            self.provision(index, strip_markers(block.text))
        elif role == "firma":
            if cur is not None and cur.kind == "firma":
                self.append(index)
            else:
                self.open("firma", "", index, path=[])
        elif role == "table":
            if cur is not None and cur.kind in ("articulo", "disposicion"):
                self.append(index)
            else:
                self.open("tabla", block.caption, index)
                self.close()
        elif role == "centro" and self.in_annex() and (
                cur is None or cur.kind not in ("articulo", "disposicion")):
            # A centred heading inside an annex starts an annex section.
            heading = clean_text(block.text)
            self.pop_to(LEVEL["anexo_seccion"])
            self.open("anexo", heading, index)
            self.stack.append(_Frame(LEVEL["anexo_seccion"], heading))
        elif cur is not None and cur.kind != "tabla":
            self.append(index)
        else:
            kind = self.loose_kind()
            self.open(kind, "", index)
            if kind != "preambulo":
                self.close()  # loose paragraphs are one unit each; the chunker packs them

    def loose_kind(self) -> UnitKind:
        if self.has_provisions and not self.seen_structure:
            return "preambulo"
        return "parrafo"


def build_units(blocks: Sequence[Block]) -> tuple[str, list[Unit]]:
    """The document text and its units, in reading order."""
    builder = _Builder(blocks)
    for index, block in enumerate(blocks):
        builder.add(index, block)
    builder.close()

    offsets: list[tuple[int, int]] = []
    pieces: list[str] = []
    position = 0
    for block in blocks:
        if pieces:
            position += len(BLOCK_SEPARATOR)
        offsets.append((position, position + len(block.text)))
        pieces.append(block.text)
        position += len(block.text)
    text = BLOCK_SEPARATOR.join(pieces)

    units: list[Unit] = []
    for span in builder.spans:
        start, end = offsets[span.first][0], offsets[span.last][1]
        kind: UnitKind = span.kind
        if kind == "parrafo" and span.roles == ["image"]:
            kind = "imagen"
        heading = span.heading
        if kind == "preambulo" and not heading:
            heading = "Preámbulo"
        units.append(Unit(kind=kind, heading=heading, path=list(span.path),
                          text=text[start:end], disposicion=span.disposicion,
                          start=start, end=end))
    return text, units
