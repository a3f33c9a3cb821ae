"""Where in the source a fact of a summary is: its structural path, offsets and quote.

``AnchorSource`` is the parsed document seen by the review: the parsed text (whose offsets
the parser's units point into), the units with their enclosing headings, and the metadata
header the model was also shown. ``anchor`` finds, for one fact of a summary, the source
fact that supports it (the one whose sentence shares most words with the summary's
sentence), or, when none does, the closest candidate of the same kind, so a flag can say
"el resumen dice 15 días; la fuente, Artículo 7 › 2: «diez días hábiles»".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pydantic import BaseModel, Field

from boeflow.core.textnorm import fold, stem_text
from boeflow.core.types import Unit
from boeflow.review.facts import Fact, FactIndex, extract_facts

HEADER_PATH = "Cabecera"
# A summary sentence about an entry into force or a deadline, whose date may be computed.
_COMPUTED_CONTEXT = re.compile(r"\b(?:vigor|efectos|plazo|hasta|vence|finaliza|termina)",
                               re.IGNORECASE)
_SENTENCE = re.compile(r"[^.;:\n]+(?:[.;:](?!\d)|\n|$)")
_APARTADO = re.compile(r"^\s*(\d{1,2})\.(?!\d)\s|^\s*([a-zñ])\)\s")
_SHORT_HEADING = re.compile(
    r"^((?:Art[íi]culo|Disposici[óo]n\s+(?:adicional|transitoria|derogatoria|final)"
    r"(?:\s+\w+)?|ANEXO|Anexo|CAP[ÍI]TULO|T[ÍI]TULO|Secci[óo]n)\s*[\w.ªº]*)")
_STOP_WORDS = (
    "el la los las lo un una unos unas de del al a en por para con sin sobre que se su "
    "sus y e o u ni no es son ser sera seran este esta estos estas ese esa dicho dicha "
    "como mas le les ya muy cuando donde entre desde hasta segun tambien asi otro otra "
    "otros otras ")
_STOP = frozenset(fold(w) for w in _STOP_WORDS.split())


class SourceAnchor(BaseModel):
    """A span of the parsed source: ``quote == text[start:end]`` (offsets are None for the
    metadata header, which is not part of the parsed text)."""

    path: str
    start: int | None = None
    end: int | None = None
    quote: str


class AnchoredFact(BaseModel):
    """One fact of a summary with its support (or, unsupported, the closest candidate)."""

    kind: str
    value: str = Field(description="the fact as the summary writes it")
    supported: bool
    source: SourceAnchor | None = Field(
        None, description="the supporting span; for an unsupported fact the closest candidate")
    field: str = ""


def content_stems(text: str) -> set[str]:
    """Stems of the content words of ``text`` (stop words and digits left out)."""
    words = [w for w in re.findall(r"[^\W\d_]{3,}", fold(text)) if w not in _STOP]
    return set(stem_text(" ".join(words)).split()) if words else set()


@dataclass(frozen=True)
class SourceSentence:
    start: int
    end: int
    text: str
    stems: frozenset[str]
    keys: frozenset[tuple[str, str]]


@dataclass
class AnchorSource:
    """The parsed source of a document as the review anchors facts into it."""

    text: str
    units: Sequence[Unit] = ()
    header: str = ""
    # Dates the facts card computes (entry into force, last days of deadlines), ISO → the
    # clause they come from: a summary may state the computed date the text only implies.
    computed: dict[str, SourceAnchor] = field(default_factory=dict)

    @cached_property
    def facts(self) -> list[Fact]:
        return extract_facts(self.text)

    @cached_property
    def header_facts(self) -> list[Fact]:
        return extract_facts(self.header)

    @cached_property
    def index(self) -> FactIndex:
        return FactIndex.of(f"{self.header}\n\n{self.text}")

    @cached_property
    def sentences(self) -> list[SourceSentence]:
        found = []
        by_start = sorted(self.facts, key=lambda f: f.start)
        for match in _SENTENCE.finditer(self.text):
            raw = match.group(0)
            if len(raw.strip()) < 3:
                continue
            start = match.start() + (len(raw) - len(raw.lstrip()))
            end = match.start() + len(raw.rstrip())
            keys = frozenset((f.kind, f.key) for f in by_start if start <= f.start < end)
            found.append(SourceSentence(start, end, self.text[start:end],
                                        frozenset(content_stems(raw)), keys))
        return found

    # --- paths ------------------------------------------------------------------------

    def unit_at(self, offset: int) -> Unit | None:
        for unit in self.units:
            if unit.start <= offset < max(unit.end, unit.start + 1):
                return unit
        return None

    def path_at(self, offset: int) -> str:
        """"Artículo 3 › 2 › a)": the unit's short heading, then the apartado and letter of
        the paragraph the offset falls in."""
        unit = self.unit_at(offset)
        if unit is None:
            return "Texto"
        parts: list[str] = []
        heading = unit.heading.strip()
        if heading:
            short = _SHORT_HEADING.match(heading)
            parts.append((short.group(1) if short else heading.split(".")[0]).rstrip(". "))
        elif unit.path:
            parts.append(unit.path[-1].split(".")[0])
        else:
            number = sum(1 for u in self.units if u.start <= unit.start and u.kind == unit.kind)
            parts.append(f"Párrafo {number}")
        # Paragraphs of the unit up to the offset: the last numbered and lettered ones.
        inner = self.text[unit.start:offset]
        number_mark = letter_mark = None
        for paragraph in inner.split("\n\n"):
            mark = _APARTADO.match(paragraph)
            if mark and mark.group(1):
                number_mark, letter_mark = mark.group(1), None
            elif mark and mark.group(2):
                letter_mark = mark.group(2) + ")"
        parts += [m for m in (number_mark, letter_mark) if m]
        return " › ".join(parts)

    def span(self, start: int, end: int) -> SourceAnchor:
        return SourceAnchor(path=self.path_at(start), start=start, end=end,
                            quote=self.text[start:end])

    # --- support ----------------------------------------------------------------------

    def _context_score(self, fact: Fact, stems: set[str]) -> float:
        sentence = self.sentence_at(fact.start)
        if sentence is None or not stems:
            return 0.0
        return len(stems & sentence.stems) / len(stems)

    @cached_property
    def _sentence_starts(self) -> list[int]:
        return [s.start for s in self.sentences]

    @cached_property
    def _by_kind(self) -> dict[str, dict[str, list[Fact]]]:
        table: dict[str, dict[str, list[Fact]]] = {}
        for fact in self.facts:
            table.setdefault(fact.kind, {}).setdefault(fact.key, []).append(fact)
        return table

    def sentence_at(self, offset: int) -> SourceSentence | None:
        i = bisect.bisect_right(self._sentence_starts, offset) - 1
        if i >= 0 and self.sentences[i].start <= offset < self.sentences[i].end:
            return self.sentences[i]
        return None

    def _supporting(self, fact: Fact) -> list[Fact]:
        """The source facts (of the parsed text) that each alone support ``fact``."""
        found: list[Fact] = []
        for key, facts in self._by_kind.get(fact.kind, {}).items():
            if key == fact.key or FactIndex(keys={fact.kind: {key}}, text_lower="",
                                            text_folded=" ".join(fold(facts[0].text).split())
                                            ).supports(fact):
                found += facts
        return found

    def anchor(self, fact: Fact, context: str = "", field_name: str = "") -> AnchoredFact:
        """The fact's support in the source (best aligned with ``context``, the summary
        sentence it is in), or the closest candidate of its kind when it has none."""
        stems = content_stems(context)
        supported = self.index.supports(fact)
        if supported:
            single = self._supporting(fact)
            if fact.kind == "organism" and not single:
                single = self._by_text(fact)
            if single:
                best = max(single, key=lambda f: (self._context_score(f, stems), -f.start))
                return AnchoredFact(kind=fact.kind, value=fact.text, supported=True,
                                    source=self.span(best.start, best.end), field=field_name)
            header = next((f for f in self.header_facts if FactIndex(
                keys={f.kind: {f.key}}, text_lower="",
                text_folded=" ".join(fold(f.text).split())).supports(fact)), None)
            quote = header.text if header else fact.text
            return AnchoredFact(kind=fact.kind, value=fact.text, supported=True,
                                source=SourceAnchor(path=HEADER_PATH, quote=quote),
                                field=field_name)
        same_kind = [f for facts in self._by_kind.get(fact.kind, {}).values() for f in facts]
        if fact.kind == "date" and _COMPUTED_CONTEXT.search(context):
            computed = self._computed(fact.key, context)
            if computed is not None:
                return AnchoredFact(kind=fact.kind, value=fact.text, supported=True,
                                    source=computed, field=field_name)
        candidate = self.closest(fact, stems, same_kind)
        return AnchoredFact(kind=fact.kind, value=fact.text, supported=False,
                            source=None if candidate is None else
                            self.span(candidate.start, candidate.end), field=field_name)

    def _computed(self, key: str, context: str) -> SourceAnchor | None:
        """The card's clause computing this date, when the summary's sentence speaks of
        the same thing (entry into force for its date, a deadline for a last day)."""
        year, month, day = key.split("-")
        in_force = re.search(r"vigor|efectos", context, re.IGNORECASE) is not None
        for iso, anchor in self.computed.items():
            c_year, c_month, c_day = iso.split("-")
            if c_month != month or c_day.lstrip("0") != day or year not in ("*", c_year):
                continue
            if in_force == bool(re.search(r"vigor|efectos", anchor.quote, re.IGNORECASE)):
                return anchor
        return None

    def _by_text(self, fact: Fact) -> list[Fact]:
        pattern = re.compile(re.escape(" ".join(fact.text.split())).replace(r"\ ", r"\s+"),
                             re.IGNORECASE)
        return [Fact(fact.kind, fact.key, m.group(0), m.start(), m.end())
                for m in pattern.finditer(self.text)]

    def closest(self, fact: Fact, stems: set[str], same_kind: Sequence[Fact]) -> Fact | None:
        """The source fact of the same kind most likely meant: the one whose sentence
        shares most words with the summary's, then the nearest value."""
        if not same_kind:
            return None

        def value_distance(candidate: Fact) -> float:
            ours = re.findall(r"\d+", fact.key)
            theirs = re.findall(r"\d+", candidate.key)
            if not ours or not theirs:
                return 1e9
            return float(sum(abs(int(a) - int(b)) for a, b in zip(ours, theirs, strict=False)))

        return max(same_kind, key=lambda f: (round(self._context_score(f, stems), 2),
                                             -value_distance(f), -f.start))

    def candidates(self, context: str, keys: set[tuple[str, str]],
                   top: int = 4) -> list[tuple[SourceSentence, float]]:
        """The ``top`` source sentences a summary sentence most likely paraphrases (a
        summary sentence often merges several), with their share of its content words."""
        stems = content_stems(context)
        if not stems:
            return []
        scored = []
        for sentence in (*self.header_sentences, *self.sentences):
            shared = len(stems & sentence.stems) / len(stems)
            if shared:
                scored.append((shared + 0.1 * min(3, len(keys & sentence.keys)), shared,
                               sentence))
        scored.sort(key=lambda item: -item[0])
        return [(sentence, shared) for _, shared, sentence in scored[:top]]

    def align(self, context: str,
              keys: set[tuple[str, str]] | frozenset[tuple[str, str]]
              ) -> tuple[SourceSentence, float] | None:
        """The source sentence a summary sentence paraphrases, and the share of the
        summary sentence's content words it has (shared facts break ties)."""
        stems = content_stems(context)
        if not stems:
            return None
        best: tuple[float, float, SourceSentence] | None = None
        for sentence in (*self.header_sentences, *self.sentences):
            shared = len(stems & sentence.stems) / len(stems)
            score = shared + 0.1 * min(3, len(keys & sentence.keys))
            if best is None or score > best[0]:
                best = (score, shared, sentence)
        if best is None:
            return None
        return best[2], best[1]

    @cached_property
    def header_sentences(self) -> list[SourceSentence]:
        """The metadata lines (the title above all) as sentences with no offsets."""
        found = []
        for line in self.header.splitlines():
            value = line.split(":", 1)[-1].strip()
            if len(value) > 20:
                keys = frozenset((f.kind, f.key) for f in extract_facts(value))
                found.append(SourceSentence(-1, -1, value, frozenset(content_stems(value)),
                                            keys))
        return found

    def sentence_anchor(self, sentence: SourceSentence) -> SourceAnchor:
        if sentence.start < 0:
            return SourceAnchor(path=HEADER_PATH, quote=sentence.text)
        return self.span(sentence.start, sentence.end)


def describe(anchored: AnchoredFact) -> str:
    """The flag of an unsupported fact with the closest candidate span."""
    if anchored.source is None:
        return f"el resumen dice «{anchored.value}»; la fuente no tiene ningún dato de ese tipo"
    return (f"el resumen dice «{anchored.value}»; la fuente, {anchored.source.path}: "
            f"«{anchored.source.quote}»")
