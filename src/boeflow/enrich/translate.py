"""Spanish↔Valencian translation (Aitana) of titles, whole summaries and source texts.

``translate_many`` translates the fields of many documents at once: every field is split
into pieces within the budget, and the pieces of all documents are generated together in
batches of similar output allowance. Each translated field gets its own review.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from boeflow.core.settings import Settings
from boeflow.enrich.apertium import PROTECTION_VERSION, Apertium, get_apertium
from boeflow.enrich.backends import Backend, GenerationParams, get_backend
from boeflow.enrich.budget import split_to_budget
from boeflow.enrich.cache import EnrichStore, cache_key
from boeflow.enrich.prompts import DEFAULT_TRANSLATION_PROMPTS, Message, TranslationPrompts
from boeflow.enrich.schema import (
    SUMMARY_FIELDS,
    PromptLog,
    SummaryRecord,
    TranslatedSegment,
    TranslationRecord,
)
from boeflow.models.loading import ModelSetupError
from boeflow.review import review_translation
from boeflow.review.checks import REFERENCE_MIN_CHRF
from boeflow.review.facts import BOE_ID, CITATION, NUMBER, NUMERIC_DATE, URL

log = logging.getLogger(__name__)

Lang = Literal["es", "va"]
PLACEHOLDER = re.compile(r"\[\[\s*N\s*(\d+)\s*\]\]")
# Translations run a little longer than their source (Valencian vs Spanish, ~1.1–1.3×).
OUTPUT_RATIO = 1.5
OUTPUT_SLACK_TOKENS = 16
_ECHOED_TAGS = re.compile(r"^\s*<texto>\s*|\s*</texto>\s*$", re.IGNORECASE)
# Output allowances are rounded up to this step so that pieces of many documents share a batch.
ALLOWANCE_STEP = 32


@dataclass(frozen=True)
class TranslationJob:
    doc_id: str
    fields: Sequence[tuple[str, str]]
    source: Lang
    target: Lang


def summary_fields(summary: SummaryRecord) -> list[tuple[str, str]]:
    """Every text field of a summary (and its title) as named translation fields:
    ``titulo``, ``resumen``, ``puntos_clave.0``…, ``a_quien_afecta``, ``plazos_y_fechas.0``…,
    ``entrada_en_vigor``, ``normas_afectadas.0``…"""
    fields: list[tuple[str, str]] = [("titulo", summary.title)] if summary.title else []
    if summary.summary is None:
        return fields
    data = summary.summary.model_dump()
    for name in SUMMARY_FIELDS:
        value = data[name]
        if isinstance(value, list):
            fields += [(f"{name}.{i}", str(item)) for i, item in enumerate(value)]
        else:
            fields.append((name, str(value)))
    return fields


def summary_structure(record: TranslationRecord) -> dict[str, Any] | None:
    """The translated summary in the structure of ``Summary`` (``summary_va``)."""
    by_name = {s.field: s.text for s in record.segments}
    if "resumen" not in by_name:
        return None
    result: dict[str, Any] = {}
    for name in SUMMARY_FIELDS:
        items = sorted(((int(f.split(".", 1)[1]), text) for f, text in by_name.items()
                        if f.startswith(f"{name}.")), key=lambda pair: pair[0])
        result[name] = [text for _, text in items] if items or name not in by_name \
            else by_name[name]
    return result


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



def _stored_or_refused(cached: Callable[[TranslationJob], TranslationRecord | None],
                       job: TranslationJob, force: bool) -> TranslationRecord | Exception | None:
    """A job's stored translation, or why it cannot be translated (as a value: the job's own
    failure, never the batch's), or None when it must be translated now. A setup problem is
    raised: it is the whole task's."""
    try:
        if job.source == job.target:
            raise ValueError(f"source and target language are both {job.source}")
        return None if force else cached(job)
    except ModelSetupError:
        raise
    except Exception as exc:
        return exc

class _StoredTranslations:
    """What both translators share: their records in the enrich store, and one document's
    translation as a batch of one."""

    store: EnrichStore

    def record_key(self, fields: Sequence[tuple[str, str]], source: Lang, target: Lang) -> str:
        raise NotImplementedError

    def translate_many(self, jobs: Sequence[TranslationJob], force: bool = False,
                       on_done: Callable[[int, TranslationRecord | Exception], None] | None = None,
                       ) -> list[TranslationRecord | Exception]:
        raise NotImplementedError

    def cached(self, job: TranslationJob) -> TranslationRecord | None:
        key = self.record_key(job.fields, job.source, job.target)
        return self.store.load_record(job.doc_id, "translation", key, TranslationRecord)

    def translate(self, doc_id: str, fields: Sequence[tuple[str, str]], source: Lang,
                  target: Lang, force: bool = False) -> TranslationRecord:
        """Translate named fields (e.g. titulo, resumen, puntos_clave.0) of one document."""
        result = self.translate_many([TranslationJob(doc_id, fields, source, target)],
                                     force=force)[0]
        if isinstance(result, Exception):
            raise result
        return result


class Translator(_StoredTranslations):
    def __init__(self, settings: Settings, backend: Backend, store: EnrichStore | None = None,
                 prompts: TranslationPrompts = DEFAULT_TRANSLATION_PROMPTS,
                 reference: bool = False) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store or EnrichStore(settings)
        self.prompts = prompts
        self._special_tokens: list[str] | None = None
        # Apertium's translation of the same fields, the review's cross-check (production).
        self.reference = reference

    @property
    def _specials(self) -> list[str]:
        if self._special_tokens is None:  # needs the tokenizer: only once work is due
            self._special_tokens = self.backend.special_tokens()
        return self._special_tokens

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
        """Generate all pieces, batched by output allowance (rounded up to
        ``ALLOWANCE_STEP``: short titles do not wait for long paragraphs, and pieces of
        many documents share a batch)."""
        by_allowance: dict[int, list[int]] = {}
        for i, tokens in enumerate(wanted):
            rounded = min(self.settings.translate_max_new_tokens,
                          math.ceil(tokens / ALLOWANCE_STEP) * ALLOWANCE_STEP)
            by_allowance.setdefault(rounded, []).append(i)
        outputs = [""] * len(prompts)
        for max_new, members in sorted(by_allowance.items()):
            params = GenerationParams.from_settings(self.settings, max_new)
            generations = self.backend.generate([prompts[i] for i in members], params)
            for i, generation in zip(members, generations, strict=True):
                outputs[i] = generation.text
                logs[i] = PromptLog(stage="translate", index=i,
                                    prompt_tokens=generation.prompt_tokens,
                                    max_new_tokens=max_new,
                                    context_length=self.backend.context_length,
                                    completion_tokens=generation.completion_tokens)
        return outputs

    def translate_many(self, jobs: Sequence[TranslationJob], force: bool = False,
                       on_done: Callable[[int, TranslationRecord | Exception], None] | None = None,
                       ) -> list[TranslationRecord | Exception]:
        """The translations of many documents' fields, their pieces generated together."""
        results: list[TranslationRecord | Exception | None] = [None] * len(jobs)
        todo: list[int] = []
        for j, job in enumerate(jobs):
            found = _stored_or_refused(self.cached, job, force)
            if found is not None:
                results[j] = found
            else:
                todo.append(j)
        if todo:
            self._translate_jobs(jobs, todo, results)
        if self.reference:
            self._add_references(jobs, results)
        final = [r if r is not None else RuntimeError("not translated") for r in results]
        if on_done:
            for j, result in enumerate(final):
                on_done(j, result)
        return final

    def _add_references(self, jobs: Sequence[TranslationJob],
                        results: list[TranslationRecord | Exception | None]) -> None:
        """Apertium's translation of every field of the records that have none yet (new
        records, and records cached before the cross-check existed), all in one Apertium
        process per direction; each record's review is redone with the cross-check."""
        wanting: dict[tuple[Lang, Lang], list[TranslationRecord]] = {}
        for j, result in enumerate(results):
            if isinstance(result, TranslationRecord) and \
                    result.reference_model is None and result.segments:
                wanting.setdefault((jobs[j].source, jobs[j].target), []).append(result)
        for (source, target), records in wanting.items():
            engine = apertium_for(self.settings, source, target)
            outputs = iter(engine.translate([seg.source for record in records
                                             for seg in record.segments]))
            for record in records:
                for segment in record.segments:
                    segment.reference = next(outputs)
                record.reference_model = f"apertium:{engine.revision}"
                review_translation_record(record, self.settings)
                self.store.save_record(record, record.doc_id, "translation", record.cache_key)

    def _pieces(self, job: TranslationJob) -> list[tuple[int, Masked]]:
        budget = self._piece_budget(job.target)
        pieces: list[tuple[int, Masked]] = []
        for index, (_, text) in enumerate(job.fields):
            if not text.strip():
                continue
            for piece in split_to_budget(text, budget, self._text_tokens,
                                         self.backend.tokenizer):
                masked = (mask_entities(piece) if self.settings.translate_mask_entities
                          else Masked(piece, {}))
                pieces.append((index, masked))
        return pieces

    def _translate_jobs(self, jobs: Sequence[TranslationJob], todo: list[int],
                        results: list[TranslationRecord | Exception | None]) -> None:
        planned: list[tuple[int, int, Masked]] = []  # (job, field index, piece)
        for j in todo:
            try:
                planned += [(j, index, masked) for index, masked in self._pieces(jobs[j])]
            except ModelSetupError:
                raise
            except Exception as exc:
                results[j] = exc
        live = sorted({j for j, _, _ in planned} | {j for j in todo if results[j] is None})
        prompts = [self.prompts.translate(m.text, jobs[j].target, self._specials)
                   for j, _, m in planned]
        wanted = [min(self.settings.translate_max_new_tokens,
                      math.ceil(self._text_tokens(m.text) * OUTPUT_RATIO) + OUTPUT_SLACK_TOKENS)
                  for _, _, m in planned]
        calls_before = self.backend.generate_calls
        logs: list[PromptLog] = [PromptLog(stage="translate", prompt_tokens=0, max_new_tokens=0,
                                           context_length=0)] * len(planned)
        try:
            outputs = self._generate(prompts, wanted, logs)
        except ModelSetupError:
            raise
        except Exception:
            if len(live) <= 1:
                raise
            for j in live:  # isolate the document that broke the batch
                self._translate_jobs(jobs, [j], results)
            return
        calls = self.backend.generate_calls - calls_before
        for j in live:
            mine = [i for i, (owner, _, _) in enumerate(planned) if owner == j]
            results[j] = self._record(jobs[j], [(planned[i][1], planned[i][2], outputs[i])
                                                for i in mine],
                                      [logs[i] for i in mine], calls)

    def _record(self, job: TranslationJob, pieces: list[tuple[int, Masked, str]],
                logs: list[PromptLog], calls: int) -> TranslationRecord:
        fields = job.fields
        by_field: list[list[str]] = [[] for _ in fields]
        raw_by_field: list[list[str]] = [[] for _ in fields]
        missing_by_field: list[list[str]] = [[] for _ in fields]
        for index, masked, output in pieces:
            raw = _ECHOED_TAGS.sub("", output).strip()
            restored, missing = unmask(raw, masked.originals)
            by_field[index].append(restored)
            raw_by_field[index].append(raw)
            missing_by_field[index] += missing
        segments = [TranslatedSegment(field=name, source=text, text="\n".join(by_field[i]),
                                      raw_text="\n".join(raw_by_field[i]),
                                      placeholders_missing=missing_by_field[i])
                    for i, (name, text) in enumerate(fields)]
        empty = any(not s.text.strip() for s in segments)
        key = self.record_key(fields, job.source, job.target)
        record = TranslationRecord(
            doc_id=job.doc_id, cache_key=key, model=self.backend.model_id,
            revision=self.backend.revision, prompt_version=self.prompts.version,
            source_hash=self.source_hash(fields), backend=self.backend.name,
            smoke=self.backend.is_smoke,
            status="failed" if empty else "ok", prompts=logs, generate_calls=calls,
            source_language=job.source, target_language=job.target, segments=segments)
        review_translation_record(record, self.settings)
        self.store.save_record(record, job.doc_id, "translation", key)
        return record

    def translate_summary(self, summary: SummaryRecord, force: bool = False) -> TranslationRecord:
        """Spanish → Valencian of the title and every text field of the summary."""
        return self.translate(summary.doc_id, summary_fields(summary), "es", "va", force=force)


def review_translation_record(record: TranslationRecord, settings: Settings | None = None) -> None:
    """The automatic review of every segment and of the whole translation (with the
    cross-check against Apertium's translation where the segments have one)."""
    min_chrf = settings.review_reference_min_chrf if settings else REFERENCE_MIN_CHRF
    for segment in record.segments:
        segment.review = review_translation(
            [(segment.source, segment.text)], target_language=record.target_language,
            placeholders_missing=segment.placeholders_missing,
            references=[segment.reference], labels=[segment.field],
            min_reference_chrf=min_chrf)
    record.review = review_translation(
        [(s.source, s.text) for s in record.segments], target_language=record.target_language,
        placeholders_missing=[m for s in record.segments for m in s.placeholders_missing],
        references=[s.reference for s in record.segments],
        labels=[s.field for s in record.segments], min_reference_chrf=min_chrf)


def apertium_for(settings: Settings, source: Lang, target: Lang) -> Apertium:
    """The Apertium engine of one direction (es→va: ``translate_apertium_mode``)."""
    if (source, target) == ("es", "va"):
        return get_apertium(settings.translate_apertium_mode)
    if (source, target) == ("va", "es"):
        return get_apertium(settings.translate_apertium_mode_to_es)
    raise ValueError(f"no Apertium direction {source}→{target}")


class ApertiumTranslator(_StoredTranslations):
    """Translations by Apertium (``BOEFLOW_TRANSLATE_BACKEND=apertium``): the same records,
    cache and review as the model's, every field of every pending document of a call
    translated by one Apertium process per direction. Nothing is masked with placeholders:
    Apertium keeps ids, numbers and citations as they are, and the spans it would alter are
    kept verbatim (``boeflow.enrich.apertium``)."""

    name = "apertium"

    def __init__(self, settings: Settings, store: EnrichStore | None = None) -> None:
        self.settings = settings
        self.store = store or EnrichStore(settings)
        self.processes = 0

    def record_key(self, fields: Sequence[tuple[str, str]], source: Lang, target: Lang) -> str:
        engine = apertium_for(self.settings, source, target)
        return cache_key(task="translation", source=source, target=target,
                         model=f"apertium:{engine.mode}", revision=engine.revision,
                         prompt_version=PROTECTION_VERSION,
                         source_hash=Translator.source_hash(fields), params={})

    def translate_summary(self, summary: SummaryRecord, force: bool = False) -> TranslationRecord:
        return self.translate(summary.doc_id, summary_fields(summary), "es", "va", force=force)

    def translate_many(self, jobs: Sequence[TranslationJob], force: bool = False,
                       on_done: Callable[[int, TranslationRecord | Exception], None] | None = None,
                       ) -> list[TranslationRecord | Exception]:
        results: list[TranslationRecord | Exception | None] = [None] * len(jobs)
        todo: dict[tuple[Lang, Lang], list[int]] = {}
        for j, job in enumerate(jobs):
            found = _stored_or_refused(self.cached, job, force)
            if found is not None:
                results[j] = found
            else:
                todo.setdefault((job.source, job.target), []).append(j)
        for (source, target), members in todo.items():
            self._translate(jobs, members, source, target, results)
        final = [r if r is not None else RuntimeError("not translated") for r in results]
        if on_done:
            for j, result in enumerate(final):
                on_done(j, result)
        return final

    def _translate(self, jobs: Sequence[TranslationJob], members: list[int], source: Lang,
                   target: Lang, results: list[TranslationRecord | Exception | None]) -> None:
        engine = apertium_for(self.settings, source, target)
        texts = [text for j in members for _, text in jobs[j].fields]
        try:
            outputs = engine.translate(texts)
        except ModelSetupError:
            raise
        except Exception as exc:
            if len(members) <= 1:
                for j in members:
                    results[j] = exc
                return
            for j in members:  # isolate the document that broke the batch
                self._translate(jobs, [j], source, target, results)
            return
        self.processes += 1
        position = 0
        for j in members:
            job = jobs[j]
            mine = outputs[position:position + len(job.fields)]
            position += len(job.fields)
            try:
                results[j] = self._record(job, mine, engine)
            except ModelSetupError:
                raise
            except Exception as exc:
                results[j] = exc

    def _record(self, job: TranslationJob, outputs: list[str],
                engine: Apertium) -> TranslationRecord:
        segments = [TranslatedSegment(field=name, source=text, text=output, raw_text=output)
                    for (name, text), output in zip(job.fields, outputs, strict=True)]
        key = self.record_key(job.fields, job.source, job.target)
        record = TranslationRecord(
            doc_id=job.doc_id, cache_key=key, model=f"apertium:{engine.mode}",
            revision=engine.revision, prompt_version=PROTECTION_VERSION,
            source_hash=Translator.source_hash(job.fields), backend="apertium", smoke=False,
            status="failed" if any(not s.text.strip() for s in segments if s.source.strip())
            else "ok", generate_calls=1, source_language=job.source,
            target_language=job.target, segments=segments)
        review_translation_record(record, self.settings)
        self.store.save_record(record, job.doc_id, "translation", key)
        return record


class TextTranslator(Protocol):
    """What the enrich step needs of a translator (``Translator``, ``ApertiumTranslator``)."""

    def cached(self, job: TranslationJob) -> TranslationRecord | None: ...

    def translate(self, doc_id: str, fields: Sequence[tuple[str, str]], source: Lang,
                  target: Lang, force: bool = False) -> TranslationRecord: ...

    def translate_many(self, jobs: Sequence[TranslationJob], force: bool = False,
                       on_done: Callable[[int, TranslationRecord | Exception], None] | None = None,
                       ) -> list[TranslationRecord | Exception]: ...

    def translate_summary(self, summary: SummaryRecord,
                          force: bool = False) -> TranslationRecord: ...


def model_settings(settings: Settings) -> Settings:
    """The settings the translator model runs under: ``translate_backend=http`` serves it
    from the OpenAI-compatible server whatever ``gen_backend`` says."""
    if settings.translate_backend == "http" and settings.gen_backend != "http":
        return settings.model_copy(update={"gen_backend": "http"})
    return settings


def make_translator(settings: Settings, store: EnrichStore | None = None,
                    backend: Backend | None = None) -> TextTranslator:
    """The translator of ``settings.translate_backend``: Apertium, or the translator model
    (in process or over HTTP) cross-checked against Apertium (``translate_reference``).
    Nothing is loaded or run until a translation is really due."""
    if settings.translate_backend == "apertium" and backend is None:
        return ApertiumTranslator(settings, store)
    run = model_settings(settings)
    return Translator(run, backend or get_backend(run, "translator"), store,
                      reference=settings.translate_reference)
