"""Article-aware chunking: ``ParsedDocument`` → embeddable :class:`~boeflow.core.types.Chunk` s.

Rules (issue 4):

* one unit (article, disposición, annex section, table, preamble…) per chunk when it fits;
* a longer unit is split at paragraph, then sentence (spaCy ``es`` sentencizer), then token
  boundaries, each later part repeating the last ``overlap`` tokens of the previous one;
* a long table is split by rows, each part repeating the table's caption and header;
* a heading unit (título, capítulo, annex…) joins the first chunk of what it heads, tiny
  neighbours (under ``merge_below`` tokens) join only when they share the same parent and
  kind (a signature joins what it signs), and
  loose paragraphs of unstructured notices are packed together;
* every chunk's ``text`` is a context line ("Ley 2/2025 › Título I › Artículo 3") plus the
  bare text, and is never longer than ``max_tokens`` tokens of the embedding tokenizer,
  special tokens included.

Offsets: ``bare_text[overlap_chars:] == doc.text[start:end]`` for every chunk, and the
``[start, end)`` spans of a document's chunks are in order and do not overlap.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from boeflow.core.errors import BoeflowError, one_line
from boeflow.core.settings import Settings
from boeflow.core.textnorm import fold
from boeflow.core.types import Chunk, ParsedDocument, Unit
from boeflow.parse.structure import BLOCK_SEPARATOR, STRUCTURAL_KINDS

CONTEXT_SEPARATOR = " › "
_SHORT_HEADING = re.compile(
    r"^(?:(?:libro|t[ií]tulo|cap[ií]tulo|secci[oó]n|subsecci[oó]n|anexo|art[ií]culo)\s+[^\s.]+"
    r"(?:\.[ªº])?|disposici[oó]n\s+\w+(?:\s+\w+)?)",
    re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\|(?:-+\|)+$")
_SLUG = re.compile(r"[^a-z0-9]+")


# --- tokenizer ----------------------------------------------------------------------------

class TokenCounter:
    """Counts tokens exactly as the embedder will see them (special tokens included).

    Uses the Rust ``tokenizers`` backend when available (fast, and free of the "sequence
    longer than model_max_length" warning). When the tokenizer pre-splits on whitespace
    (Metaspace/WhitespaceSplit, as bge-m3 and XLM-R do) a text's count is the sum of its
    words' counts, so words are counted once and cached: legal text repeats its words, and
    this makes counting many overlapping candidate chunks cheap. That additivity is checked
    against full tokenization of probe texts at start-up; if it does not hold, every count
    tokenizes the whole text.
    """

    _PROBES = (
        "Artículo 3. Ayudas destinadas a paliar daños personales (DANA), «BOE» núm. 268.",
        "| Número | Denominación |\n|---|---|\n| 1 | Alaquàs. |",
        "1.ª Legislación sobre pesas y medidas; 12,5 % — 1.200.000 euros.\n\nSegundo párrafo",
        "Constitución BOE-A-1978-31229 › TÍTULO I › Artículo 14\nLos españoles son iguales",
    )
    _CACHE_LIMIT = 1_000_000

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # A private copy: switching off truncation must not change the caller's tokenizer.
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        self.backend = backend
        self.special_tokens = self.exact_count([""])[0]
        # Bounded LRU: a long backfill meets millions of distinct words (numbers, names).
        self._word_tokens: LRUCache[str, int] = LRUCache(maxsize=self._CACHE_LIMIT)
        self.additive = False
        if backend is not None:
            self.additive = True
            self.additive = self.count(self._PROBES) == self.exact_count(self._PROBES)

    def exact_count(self, texts: Sequence[str]) -> list[int]:
        """Token counts from tokenizing each whole text."""
        if not texts:
            return []
        if self.backend is not None:
            return [len(e.ids) for e in self.backend.encode_batch(list(texts))]
        encoded = self.tokenizer(list(texts), add_special_tokens=True, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _words(self, texts: Sequence[str]) -> tuple[list[list[str]], dict[str, int]]:
        """The words of each text and the token count of every one of them.

        Counts come back in a dict of this call's own, so the shared cache may evict
        anything (even words of this call, when it meets more new words than it holds)."""
        split = [text.split() for text in texts]
        cache = self._word_tokens
        counts: dict[str, int] = {}
        missing: list[str] = []
        for words in split:
            for word in words:
                if word in counts:
                    continue
                known = cache.get(word)
                counts[word] = -1 if known is None else known
                if known is None:
                    missing.append(word)
        if missing:
            assert self.backend is not None  # additive mode is only enabled with a backend
            encoded = self.backend.encode_batch(missing, add_special_tokens=False)
            for word, encoding in zip(missing, encoded, strict=True):
                counts[word] = cache[word] = len(encoding.ids)
        return split, counts

    def count(self, texts: Sequence[str]) -> list[int]:
        if not self.additive:
            return self.exact_count(texts)
        split, counts = self._words(texts)
        return [self.special_tokens + sum(counts[w] for w in words) for words in split]

    def tail_start(self, text: str, tokens: int) -> int | None:
        """Offset of the first word of the longest ending of ``text`` that has at most
        ``tokens`` tokens (None when that would be all of it or nothing)."""
        if self.additive:
            matches = list(re.finditer(r"\S+", text))
            _, counts = self._words([text])
            used = 0
            start: int | None = None
            for match in reversed(matches[1:]):
                used += counts[match.group(0)]
                if used > tokens:
                    break
                start = match.start()
            return start
        offsets = self.offsets(text)
        if len(offsets) <= tokens:
            return None
        cut = offsets[-tokens][0]
        while cut < len(text) and not text[cut - 1].isspace():
            cut += 1
        while cut < len(text) and text[cut].isspace():
            cut += 1
        return cut if cut < len(text) else None

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each non-special token of ``text``."""
        if self.backend is not None:
            encoding = self.backend.encode(text, add_special_tokens=False)
            return [(int(a), int(b)) for a, b in encoding.offsets]
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]


def load_tokenizer(settings: Settings) -> Any:
    """The embedding model's tokenizer (local directory or pinned hub revision, offline)."""
    from boeflow.models.loading import apply_offline_env

    apply_offline_env(settings)
    from transformers import AutoTokenizer

    ref = settings.embed_model
    if settings.is_smoke and not Path(ref).is_dir():
        raise BoeflowError(f"smoke models not found in {settings.smoke_models_dir} "
                           "(BOEFLOW_SMOKE_MODELS_DIR): build them with `boeflow models smoke`")
    local_only = settings.hf_offline or Path(ref).is_dir()
    try:
        return AutoTokenizer.from_pretrained(ref, revision=settings.embed_revision,
                                             local_files_only=local_only)
    except (OSError, ValueError) as exc:
        first = one_line(exc)
        raise BoeflowError(f"cannot load the tokenizer of {ref} (BOEFLOW_EMBED_MODEL): "
                           f"{first[:200]}") from exc


def default_max_tokens(settings: Settings) -> int:
    """The embedder's sequence limit: ``embed_max_seq_length`` capped by the model's own
    configuration when it is readable locally (512 for bge-m3 and the smoke embedder)."""
    limit = settings.embed_max_seq_length
    model_dir = Path(settings.embed_model)
    for name, key, reserved in (("sentence_bert_config.json", "max_seq_length", 0),
                                ("config.json", "max_position_embeddings", 2)):
        path = model_dir / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
            if isinstance(value, int) and value > reserved:
                # XLM-R/RoBERTa position ids start after the padding index: 514 → 512.
                limit = min(limit, value - reserved)
    return limit


@lru_cache(maxsize=1)
def _sentencizer() -> Any:
    """spaCy's rule-based Spanish sentence splitter (no trained pipeline needed)."""
    import spacy

    nlp = spacy.blank("es")
    nlp.add_pipe("sentencizer")
    return nlp


# --- labels and ids --------------------------------------------------------------------

def short_heading(heading: str, limit: int = 60) -> str:
    """"Artículo 3. Objeto." → "Artículo 3"; "TÍTULO I. De los…" → "TÍTULO I"."""
    match = _SHORT_HEADING.match(heading)
    if match:
        return match.group(0).rstrip(".")
    if len(heading) <= limit:
        return heading.rstrip(".")
    return heading[:limit].rsplit(" ", 1)[0] + "…"


def document_label(doc: ParsedDocument) -> str:
    if doc.rango and doc.official_number:
        return f"{doc.rango} {doc.official_number}"
    if doc.rango:
        return f"{doc.rango} {doc.id}"
    return doc.id


def context_line(label: str, path: Sequence[str], headings: Sequence[str]) -> str:
    parts = [label, *(short_heading(p) for p in path)]
    heads = " / ".join(short_heading(h) for h in headings if h)
    if heads:
        parts.append(heads)
    return CONTEXT_SEPARATOR.join(parts)


@lru_cache(maxsize=4096)
def _slug(path: tuple[str, ...], headings: tuple[str, ...]) -> str:
    labels = [short_heading(p) for p in (*path, *headings)]
    return "/".join(s for s in (_SLUG.sub("-", fold(label)).strip("-") for label in labels) if s)


def chunk_id(doc_id: str, path: Sequence[str], headings: Sequence[str], bare_text: str) -> str:
    """``<doc id>:<structural path slug>:<content hash>``: the same text at the same place
    gets the same id on every run and machine."""
    slug = _slug(tuple(path), tuple(h for h in headings if h))
    digest = hashlib.sha256(bare_text.encode("utf-8")).hexdigest()[:16]
    return f"{doc_id}:{slug[:200] or 'texto'}:{digest}"


# --- splitting -------------------------------------------------------------------------

@dataclass
class _Segment:
    """A span of document text that is never cut further once packed."""

    start: int
    end: int
    tokens: int
    header: str = ""  # table rows: the caption + header lines to repeat
    table_start: int = -1  # table rows: where the table (and its header) begins


@dataclass
class _Piece:
    start: int
    end: int
    segments: list[_Segment]
    prefix: str = ""  # repeated table header, or overlap text from the previous piece
    prefix_kind: str = ""  # "header" or "overlap"


@dataclass
class _Group:
    """One future chunk: one piece of a split unit, or one or more whole units."""

    units: list[Unit]
    start: int
    end: int
    prefix: str = ""
    split: bool = False
    prefix_kind: str = ""
    tokens: int = 0
    context: str = ""

    @property
    def primary(self) -> list[Unit]:
        content = [u for u in self.units if u.kind not in STRUCTURAL_KINDS]
        return content or self.units[:1]


@dataclass
class _Chunker:
    doc: ParsedDocument
    counter: TokenCounter
    max_tokens: int
    overlap: int
    merge_below: int
    label: str = ""
    groups: list[_Group] = field(default_factory=list)

    # -- helpers -----------------------------------------------------------------------
    def context_for(self, units: Sequence[Unit]) -> str:
        primary = [u for u in units if u.kind not in STRUCTURAL_KINDS] or list(units[:1])
        return context_line(self.label, primary[0].path, [u.heading for u in primary])

    def full_text(self, context: str, bare: str) -> str:
        return f"{context}\n{bare}"

    def paragraph_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        text = self.doc.text
        spans: list[tuple[int, int]] = []
        position = start
        while position < end:
            cut = text.find(BLOCK_SEPARATOR, position, end)
            stop = end if cut < 0 else cut
            if stop > position:
                spans.append((position, stop))
            position = stop + len(BLOCK_SEPARATOR)
        return spans

    def plain_tokens(self, texts: Sequence[str]) -> list[int]:
        return [n - self.counter.special_tokens for n in self.counter.count(texts)]

    def hard_split(self, start: int, end: int, budget: int) -> list[_Segment]:
        """Cut a span with no usable sentence boundary at whitespace near every
        ``budget`` tokens."""
        text = self.doc.text[start:end]
        offsets = self.counter.offsets(text)
        segments: list[_Segment] = []
        first = 0
        while first < len(offsets):
            last = min(first + budget, len(offsets))
            cut_end = len(text) if last == len(offsets) else offsets[last][0]
            if last < len(offsets):
                space = text.rfind(" ", offsets[first][0] + 1, cut_end)
                if space > offsets[first][0]:
                    cut_end = space
            cut_start = offsets[first][0] if segments else 0
            segments.append(_Segment(start + cut_start, start + cut_end, 0))
            while first < len(offsets) and offsets[first][0] < cut_end:
                first += 1
            while first < len(offsets) and text[offsets[first][0]:offsets[first][1]].isspace():
                first += 1
        counts = self.plain_tokens([self.doc.text[s.start:s.end] for s in segments])
        for segment, count in zip(segments, counts, strict=True):
            segment.tokens = count
        return segments

    def sentence_segments(self, start: int, end: int, budget: int) -> list[_Segment]:
        text = self.doc.text[start:end]
        spans: list[tuple[int, int]] = []
        for sentence in _sentencizer()(text).sents:
            s, e = sentence.start_char, sentence.end_char
            while e > s and text[e - 1].isspace():
                e -= 1
            if e > s:
                spans.append((start + s, start + e))
        counts = self.plain_tokens([self.doc.text[s:e] for s, e in spans])
        segments: list[_Segment] = []
        for (s, e), count in zip(spans, counts, strict=True):
            if count > budget:
                segments.extend(self.hard_split(s, e, budget))
            else:
                segments.append(_Segment(s, e, count))
        return segments

    def table_segments(self, start: int, end: int, budget: int) -> list[_Segment] | None:
        text = self.doc.text[start:end]
        lines = text.split("\n")
        rule = next((i for i, line in enumerate(lines[:4]) if _TABLE_RULE.match(line)), -1)
        if not lines or not any(line.startswith("|") for line in lines[:2]):
            return None
        header_end = rule + 1 if rule >= 0 else (1 if not lines[0].startswith("|") else 0)
        header = "\n".join(lines[:header_end])
        spans: list[tuple[int, int]] = []
        position = start
        for index, line in enumerate(lines):
            line_start, line_end = position, position + len(line)
            position = line_end + 1
            if index < header_end:
                continue
            spans.append((line_start, line_end))
        if not spans:
            return None
        # The first row segment also carries the header itself.
        spans[0] = (start, spans[0][1])
        counts = self.plain_tokens([self.doc.text[s:e] for s, e in spans])
        header_tokens = self.plain_tokens([header])[0] if header else 0
        segments: list[_Segment] = []
        for (s, e), count in zip(spans, counts, strict=True):
            if count + header_tokens > budget:
                segments.extend(self.hard_split(s, e, max(budget - header_tokens, 8)))
            else:
                segments.append(_Segment(s, e, count, header, start))
        return segments

    def unit_segments(self, start: int, end: int, budget: int) -> list[_Segment]:
        spans = self.paragraph_spans(start, end)
        counts = self.plain_tokens([self.doc.text[s:e] for s, e in spans])
        segments: list[_Segment] = []
        for (s, e), count in zip(spans, counts, strict=True):
            if count <= budget:
                segments.append(_Segment(s, e, count))
                continue
            rows = self.table_segments(s, e, budget)
            segments.extend(rows if rows is not None else self.sentence_segments(s, e, budget))
        return segments

    def overlap_start(self, previous: _Piece, overlap: int) -> int | None:
        """Where the last ``overlap`` tokens of the previous piece begin (at a word start)."""
        if overlap <= 0:
            return None
        cut = self.counter.tail_start(self.doc.text[previous.start:previous.end], overlap)
        return None if cut is None else previous.start + cut

    def split_unit(self, unit: Unit, context: str) -> list[_Piece]:
        context_tokens = self.plain_tokens([context + "\n"])[0]
        budget = self.max_tokens - self.counter.special_tokens - context_tokens - 2
        if budget < 16:
            raise ValueError(f"max_tokens={self.max_tokens} leaves no room for text after the "
                             f"context line {context!r}")
        overlap = min(self.overlap, budget // 2)
        segments = self.unit_segments(unit.start, unit.end, budget - overlap)
        pieces: list[_Piece] = []
        current: list[_Segment] = []
        used = 0

        def starts_table_continuation(segment: _Segment) -> bool:
            return bool(segment.header) and segment.start != segment.table_start

        for segment in segments:
            limit = budget - (0 if not pieces and not current else overlap)
            if current and starts_table_continuation(current[0]):
                limit = budget - self.plain_tokens([current[0].header])[0] - 1
            if current and used + segment.tokens + 1 > limit:
                pieces.append(_Piece(current[0].start, current[-1].end, current))
                current, used = [], 0
            current.append(segment)
            used += segment.tokens + 1
        if current:
            pieces.append(_Piece(current[0].start, current[-1].end, current))
        for index, piece in enumerate(pieces):
            if starts_table_continuation(piece.segments[0]):
                piece.prefix = piece.segments[0].header + "\n"
                piece.prefix_kind = "header"
            elif index > 0:
                # The overlap is the document text just before the piece, so it reads on.
                begin = self.overlap_start(pieces[index - 1], overlap)
                if begin is not None:
                    piece.prefix = self.doc.text[begin:piece.start]
                    piece.prefix_kind = "overlap"
        return pieces

    # -- grouping ----------------------------------------------------------------------
    def bare(self, group: _Group) -> str:
        return group.prefix + self.doc.text[group.start:group.end]

    def measure(self, group: _Group) -> int:
        group.context = self.context_for(group.units)
        group.tokens = self.counter.count([self.full_text(group.context, self.bare(group))])[0]
        return group.tokens

    def try_merge(self, previous: _Group, unit: Unit) -> bool:
        candidate = _Group([*previous.units, unit], previous.start, unit.end, previous.prefix)
        if self.measure(candidate) > self.max_tokens:
            return False
        previous.units, previous.end = candidate.units, candidate.end
        previous.tokens, previous.context = candidate.tokens, candidate.context
        return True

    def mergeable(self, previous: _Group | None, unit: Unit, unit_tokens: int) -> bool:
        if previous is None or previous.split or previous.prefix:
            return False
        last = previous.units[-1]
        if last.kind in STRUCTURAL_KINDS and is_inside(unit, last):
            return True  # a heading joins the first chunk of what it heads
        if unit.path != last.path or STRUCTURAL_KINDS & {unit.kind, last.kind}:
            return False
        if unit.kind == last.kind == "parrafo":
            return True  # loose paragraphs of notices are packed
        if unit.kind not in (last.kind, "firma"):
            return False  # an article and a disposición stay apart, however short
        return min(previous.tokens, unit_tokens) < self.merge_below

    def run(self) -> list[_Group]:
        units = self.doc.units
        contexts = [self.context_for([u]) for u in units]
        counts = self.counter.count([self.full_text(c, u.text) for c, u in zip(
            contexts, units, strict=True)])
        for unit, context, count in zip(units, contexts, counts, strict=True):
            previous = self.groups[-1] if self.groups else None
            if count <= self.max_tokens:
                if self.mergeable(previous, unit, count) and previous is not None and \
                        self.try_merge(previous, unit):
                    continue
                self.groups.append(_Group([unit], unit.start, unit.end, tokens=count,
                                          context=context))
                continue
            pieces = self.split_unit(unit, context)
            new = [_Group([unit], p.start, p.end, p.prefix, split=True, prefix_kind=p.prefix_kind)
                   for p in pieces]
            if (previous is not None and not previous.split and not previous.prefix
                    and previous.units[-1].kind in STRUCTURAL_KINDS
                    and is_inside(unit, previous.units[-1])):
                head = _Group([*previous.units, unit], previous.start, new[0].end, split=True)
                if self.measure(head) <= self.max_tokens:
                    self.groups.pop()
                    new[0] = head
            self.groups.extend(new)
        return self.groups


def is_inside(unit: Unit, container: Unit) -> bool:
    """Whether ``container`` (a heading unit) encloses ``unit``."""
    own = [*container.path, container.heading]
    return unit.path[:len(own)] == own


def _fits_or_split(chunker: _Chunker, group: _Group) -> list[_Group]:
    """Safety net: token counts of parts are not exactly additive, so a packed group can
    exceed the limit by a token or two; drop its overlap, then halve it."""
    if not group.context:
        chunker.measure(group)
    if group.tokens <= chunker.max_tokens:
        return [group]
    if group.prefix_kind == "overlap":
        retry = _Group(group.units, group.start, group.end, "", group.split)
        chunker.measure(retry)
        if retry.tokens <= chunker.max_tokens:
            return [retry]
    spans = chunker.paragraph_spans(group.start, group.end)
    if len(spans) < 2:
        budget = max(16, (chunker.max_tokens - chunker.counter.special_tokens) // 2)
        segments = chunker.hard_split(group.start, group.end, budget)
        spans = [(s.start, s.end) for s in segments]
        if len(spans) < 2:
            raise ValueError(f"cannot fit text at {group.start} into {chunker.max_tokens} tokens")
    middle = len(spans) // 2
    first = _Group(group.units, group.start, spans[middle - 1][1], group.prefix, True,
                   group.prefix_kind)
    second = _Group(group.units[-1:], spans[middle][0], group.end, "", True)
    return _fits_or_split(chunker, first) + _fits_or_split(chunker, second)


def chunk_document(doc: ParsedDocument, tokenizer: Any, max_tokens: int, overlap: int = 64,
                   merge_below: int | None = None) -> list[Chunk]:
    """Chunks of ``doc`` in reading order (see the module docstring for the rules)."""
    if max_tokens < 32:
        raise ValueError(f"max_tokens must be at least 32, got {max_tokens}")
    if overlap < 0 or overlap >= max_tokens // 2:
        raise ValueError(f"overlap must be in [0, {max_tokens // 2}), got {overlap}")
    counter = tokenizer if isinstance(tokenizer, TokenCounter) else TokenCounter(tokenizer)
    chunker = _Chunker(doc, counter, max_tokens, overlap,
                       max_tokens // 12 if merge_below is None else merge_below,
                       label=document_label(doc))
    groups = [g for group in chunker.run() for g in _fits_or_split(chunker, group)]

    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for group in groups:
        bare = chunker.bare(group)
        primary = group.primary
        headings = [u.heading for u in primary]
        base_id = chunk_id(doc.id, primary[0].path, headings, bare)
        seen[base_id] = seen.get(base_id, 0) + 1
        chunks.append(Chunk(
            id=base_id if seen[base_id] == 1 else f"{base_id}~{seen[base_id]}",
            doc_id=doc.id, path=list(primary[0].path),
            heading=" / ".join(h for h in headings if h), kind=primary[0].kind,
            text=chunker.full_text(group.context, bare), bare_text=bare,
            n_tokens=group.tokens, start=group.start, end=group.end,
            overlap_chars=len(group.prefix),
            title=doc.title, rango=doc.rango, department=doc.department, section=doc.section,
            published=doc.published, materias=list(doc.materias), url_pdf=doc.url_pdf,
            eli=doc.eli,
        ))
    return chunks
