"""Spanish↔Valencian translation (Aitana) of titles, summaries, key points and source texts.

BOE ids, URLs, numbers (hence dates' digits, amounts, article numbers) and the numbers of
law citations are replaced by placeholders (``[[N1]]``) before translation and restored
after, so the model cannot alter them; month names and the kind of norm ("Ley" → "Llei")
are translated normally. A placeholder the model dropped is recorded and flagged by the
review.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from boeflow.config import Settings
from boeflow.enrich.backends import Backend, GenerationParams
from boeflow.enrich.budget import split_to_budget
from boeflow.enrich.cache import EnrichStore, cache_key
from boeflow.enrich.prompts import DEFAULT_TRANSLATION_PROMPTS, Message, TranslationPrompts
from boeflow.enrich.schema import PromptLog, SummaryRecord, TranslatedSegment, TranslationRecord
from boeflow.review import review_translation
from boeflow.review.facts import BOE_ID, CITATION, NUMBER, NUMERIC_DATE, URL

log = logging.getLogger(__name__)

Lang = Literal["es", "va"]
PLACEHOLDER = re.compile(r"\[\[\s*N\s*(\d+)\s*\]\]")
# Translations run a little longer than their source (Valencian vs Spanish, ~1.1–1.3×).
OUTPUT_RATIO = 1.5
OUTPUT_SLACK_TOKENS = 16
_ECHOED_TAGS = re.compile(r"^\s*<texto>\s*|\s*</texto>\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Masked:
    text: str
    originals: dict[str, str]


def mask_entities(text: str) -> Masked:
    """Replace protected spans by ``[[N1]]``, ``[[N2]]``… (same value, same placeholder)."""
    spans: list[tuple[int, int]] = []
    for pattern in (BOE_ID, URL, NUMERIC_DATE):
        spans += [m.span() for m in pattern.finditer(text)]
    spans += [m.span(2) for m in CITATION.finditer(text)]
    spans += [m.span() for m in NUMBER.finditer(text)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    by_value: dict[str, str] = {}
    parts: list[str] = []
    cursor = 0
    for start, end in merged:
        value = text[start:end]
        placeholder = by_value.setdefault(value, f"[[N{len(by_value) + 1}]]")
        parts += [text[cursor:start], placeholder]
        cursor = end
    parts.append(text[cursor:])
    return Masked("".join(parts), {p: v for v, p in by_value.items()})


def unmask(text: str, originals: dict[str, str]) -> tuple[str, list[str]]:
    """Restore placeholders; returns the text and the placeholders the model dropped."""
    seen: set[str] = set()

    def restore(match: re.Match[str]) -> str:
        key = f"[[N{match.group(1)}]]"
        if key in originals:
            seen.add(key)
            return originals[key]
        return match.group(0)

    restored = PLACEHOLDER.sub(restore, text)
    return restored, [f"{p} ({originals[p]})" for p in originals if p not in seen]


class Translator:
    def __init__(self, settings: Settings, backend: Backend, store: EnrichStore | None = None,
                 prompts: TranslationPrompts = DEFAULT_TRANSLATION_PROMPTS) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store or EnrichStore(settings)
        self.prompts = prompts
        self._specials = backend.special_tokens()

    def _text_tokens(self, text: str) -> int:
        return len(self.backend.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _piece_budget(self, target: Lang) -> int:
        """Largest source piece whose translation fits both max_new_tokens and the context."""
        overhead = self.backend.count_tokens(self.prompts.translate("", target, self._specials))
        by_output = int((self.settings.translate_max_new_tokens - OUTPUT_SLACK_TOKENS)
                        / OUTPUT_RATIO)
        by_context = int((self.backend.context_length - overhead - OUTPUT_SLACK_TOKENS - 32)
                         / (1 + OUTPUT_RATIO))
        return max(8, min(by_output, by_context))

    @staticmethod
    def source_hash(fields: Sequence[tuple[str, str]]) -> str:
        joined = "\x1e".join(f"{name}\x1f{text}" for name, text in fields)
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()

    def record_key(self, fields: Sequence[tuple[str, str]], source: Lang, target: Lang) -> str:
        s = self.settings
        return cache_key(task="translation", source=source, target=target,
                         model=self.backend.model_id, revision=self.backend.revision,
                         prompt_version=self.prompts.version,
                         source_hash=self.source_hash(fields),
                         params={"max_new_tokens": s.translate_max_new_tokens,
                                 "mask": s.translate_mask_entities, "sample": s.gen_do_sample,
                                 "repetition_penalty": s.gen_repetition_penalty,
                                 "context": self.backend.context_length})

    def _generate(self, prompts: list[list[Message]], wanted: list[int],
                  logs: list[PromptLog]) -> list[str]:
        """Generate all pieces, batched by output allowance (a piece gets the room its own
        length needs, so short titles do not wait for long paragraphs)."""
        by_allowance: dict[int, list[int]] = {}
        for i, tokens in enumerate(wanted):
            by_allowance.setdefault(tokens, []).append(i)
        outputs = [""] * len(prompts)
        for max_new, members in sorted(by_allowance.items()):
            params = GenerationParams.from_settings(self.settings, max_new)
            entries = [PromptLog(stage="translate", index=i,
                                 prompt_tokens=self.backend.count_tokens(prompts[i]),
                                 max_new_tokens=max_new,
                                 context_length=self.backend.context_length) for i in members]
            generations = self.backend.generate([prompts[i] for i in members], params)
            for i, entry, generation in zip(members, entries, generations, strict=True):
                outputs[i] = generation.text
                entry.completion_tokens = generation.completion_tokens
            logs.extend(entries)
        return outputs

    def translate(self, doc_id: str, fields: Sequence[tuple[str, str]], source: Lang,
                  target: Lang, force: bool = False) -> TranslationRecord:
        """Translate named fields (e.g. titulo, resumen, puntos_clave.0) of one document."""
        if source == target:
            raise ValueError(f"source and target language are both {source}")
        key = self.record_key(fields, source, target)
        if not force:
            cached = self.store.load_record(doc_id, "translation", key, TranslationRecord)
            if cached is not None:
                return cached
        calls_before = self.backend.generate_calls
        budget = self._piece_budget(target)
        # Each field → pieces within the budget → batched generation of all pieces.
        pieces: list[tuple[int, Masked]] = []
        for index, (_, text) in enumerate(fields):
            if not text.strip():
                continue
            for piece in split_to_budget(text, budget, self._text_tokens,
                                         self.backend.tokenizer):
                masked = (mask_entities(piece) if self.settings.translate_mask_entities
                          else Masked(piece, {}))
                pieces.append((index, masked))
        prompts = [self.prompts.translate(m.text, target, self._specials) for _, m in pieces]
        wanted = [min(self.settings.translate_max_new_tokens,
                      math.ceil(self._text_tokens(m.text) * OUTPUT_RATIO) + OUTPUT_SLACK_TOKENS)
                  for _, m in pieces]
        logs: list[PromptLog] = []
        outputs = self._generate(prompts, wanted, logs)
        by_field: list[list[str]] = [[] for _ in fields]
        raw_by_field: list[list[str]] = [[] for _ in fields]
        missing_by_field: list[list[str]] = [[] for _ in fields]
        for i, (index, masked) in enumerate(pieces):
            raw = _ECHOED_TAGS.sub("", outputs[i]).strip()
            restored, missing = unmask(raw, masked.originals)
            by_field[index].append(restored)
            raw_by_field[index].append(raw)
            missing_by_field[index] += missing
        segments = [TranslatedSegment(field=name, source=text, text="\n".join(by_field[i]),
                                      raw_text="\n".join(raw_by_field[i]),
                                      placeholders_missing=missing_by_field[i])
                    for i, (name, text) in enumerate(fields)]
        empty = any(not s.text.strip() for s in segments)
        record = TranslationRecord(
            doc_id=doc_id, cache_key=key, model=self.backend.model_id,
            revision=self.backend.revision, prompt_version=self.prompts.version,
            source_hash=self.source_hash(fields), backend=self.backend.name,
            smoke=self.backend.is_smoke,
            status="failed" if empty else "ok", prompts=logs,
            generate_calls=self.backend.generate_calls - calls_before,
            source_language=source, target_language=target, segments=segments)
        record.review = review_translation(
            [(s.source, s.text) for s in segments], target_language=target,
            placeholders_missing=[m for s in segments for m in s.placeholders_missing])
        self.store.save_record(record, doc_id, "translation", key)
        return record

    def translate_summary(self, summary: SummaryRecord, force: bool = False) -> TranslationRecord:
        """Spanish → Valencian of the title, the summary and the key points."""
        fields: list[tuple[str, str]] = [("titulo", summary.title)] if summary.title else []
        if summary.summary is not None:
            fields.append(("resumen", summary.summary.resumen))
            fields += [(f"puntos_clave.{i}", p) for i, p in enumerate(summary.summary.puntos_clave)]
        elif summary.raw_text.strip():
            fields.append(("resumen", summary.raw_text))  # failed summary: still reviewable
        return self.translate(summary.doc_id, fields, "es", "va", force=force)
