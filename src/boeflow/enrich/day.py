"""Enrichment of documents (the enrich step, ``boeflow.jobs.enrich``, runs it per batch):
summarise, translate and review each document, and store the outputs and review flags on its
``boe-documents`` record.

* Models are the process's shared backends (``get_backend``): loaded on the first prompt
  that really has to be generated, once per process, reused by every document and day; a
  rerun of a finished day finds every record in the store and loads nothing.
* Documents are planned together (``enrich_window_docs`` at a time): the summaries' map,
  reduce and final prompts of all of them are generated in shared batches, then the
  translations of all their fields.
* A setup error (``ModelSetupError``: missing weights, no CUDA, server down) stops the day at
  once with one line; anything else that goes wrong with one document is that document's
  row in ``failed``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.enrich.backends import get_backend
from boeflow.enrich.schema import SummaryRecord, TranslationRecord
from boeflow.enrich.summarize import Summarizer
from boeflow.enrich.translate import (
    TranslationJob,
    make_translator,
    summary_fields,
    summary_structure,
)
from boeflow.index.mapping import IndexNames
from boeflow.index.writer import RETRY_ON_CONFLICT
from boeflow.review.source import SourceDocument, read_document

log = logging.getLogger(__name__)

OnDocument = Callable[["DocumentOutcome"], None]
MAX_REASONS = 50


@dataclass
class DocumentOutcome:
    doc_id: str
    summary: SummaryRecord | None = None
    translation: TranslationRecord | None = None
    error: str | None = None
    generated: bool = False
    translation_wanted: bool = True  # False when the run asked for Spanish only

    @property
    def needs_attention(self) -> bool:
        return bool(self.error or self.summary is None or self.summary.status != "ok"
                    or (self.summary.review and self.summary.review.needs_attention)
                    or (self.translation_wanted and self.translation is None)
                    or bool(self.translation and self.translation.review
                            and self.translation.review.needs_attention))

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "needs_attention" if self.needs_attention else "ok"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc)}"[:300]


def enrich_documents(docs: Sequence[SourceDocument], settings: Settings,
                     on_document: OnDocument | None = None,
                     force: bool = False, translate: bool = True) -> list[DocumentOutcome]:
    """Summary (es), full translation (va, unless ``translate`` is False) and review of
    every document, planned and batched together ``enrich_window_docs`` at a time."""
    summarizer = Summarizer(settings, get_backend(settings, "summarizer"))
    translator = make_translator(settings) if translate else None
    outcomes: list[DocumentOutcome] = []
    window = settings.enrich_window_docs
    for start in range(0, len(docs), window):
        part = docs[start:start + window]
        summaries = summarizer.summarize_many(part, force=force)
        current = [DocumentOutcome(doc_id=doc.id, translation_wanted=translate)
                   for doc in part]
        jobs: list[TranslationJob] = []
        owners: list[int] = []
        for i, result in enumerate(summaries):
            if isinstance(result, Exception):
                current[i].error = _reason(result)
                continue
            current[i].summary = result
            current[i].generated = part[i].id in summarizer.generated_ids
            jobs.append(TranslationJob(part[i].id, summary_fields(result), "es", "va"))
            owners.append(i)
        translations = translator.translate_many(jobs, force=force) if translator else []
        for i, translated in zip(owners if translator else [], translations, strict=True):
            if isinstance(translated, Exception):
                current[i].error = f"translation: {_reason(translated)}"
            else:
                current[i].translation = translated
        for outcome in current:
            if on_document:
                on_document(outcome)
        outcomes += current
    return outcomes


def enrichment_fields(outcome: DocumentOutcome) -> dict[str, Any]:
    """The enrich/review stage's fields of a ``boe-documents`` record.

    ``summary`` and ``summary_va`` share one structure (resumen, puntos_clave[],
    a_quien_afecta, plazos_y_fechas[], entrada_en_vigor, normas_afectadas[]); each
    translated field's own review is in ``summary_va_review``."""
    record = outcome.summary
    translation = outcome.translation
    summary = record.summary.model_dump() if record and record.summary else None
    status = "failed" if record is None or record.status != "ok" else (
        "needs_attention" if outcome.needs_attention else "auto_checked")
    reasons = list(record.review.reasons) if record and record.review else []
    field_reviews: dict[str, Any] = {}
    title_va = None
    summary_va = None
    va_source = None
    if translation is not None:
        shown = translation
        va_source = "apertium" if translation.backend == "apertium" else "model"
        if translation_fell_back(translation):
            # The model's translation failed its review: show Apertium's, labelled so.
            shown = translation.model_copy(update={"segments": [
                s.model_copy(update={"text": s.reference or s.text})
                for s in translation.segments]})
            va_source = "apertium_reference"
        by_name = {s.field: s for s in shown.segments}
        title_va = by_name["titulo"].text if "titulo" in by_name else None
        summary_va = summary_structure(shown) if summary else None
        for segment in translation.segments:
            review = segment.review
            field_reviews[segment.field] = {
                "needs_attention": bool(review and review.needs_attention),
                "reasons": list(review.reasons) if review else []}
            if review:
                reasons += [f"traducción {segment.field}: {r}" for r in review.reasons]
    return {
        "summary": summary,
        "summary_text": (summary or {}).get("resumen"),
        "title_va": title_va,
        "summary_va": summary_va,
        "summary_va_review": field_reviews,
        "review_status": status,
        "needs_attention": outcome.needs_attention,
        "review_reasons": reasons[:MAX_REASONS],
        "enrichment_stale": False,
        # Every fact of the summary with its source anchor {kind, value, supported, source}.
        "review_facts": [f.model_dump(mode="json") for f in record.review.facts]
        if record and record.review else [],
        "enrichment": {
            "summarizer_model": record.model if record else None,
            "summarizer_revision": record.revision if record else None,
            "summary_prompt_version": record.prompt_version if record else None,
            "summary_mode": record.mode if record else None,
            "summary_structured": record.structured if record else None,
            "translator_model": translation.model if translation else None,
            "translator_revision": translation.revision if translation else None,
            "translation_prompt_version": translation.prompt_version if translation else None,
            # Who wrote title_va/summary_va: "apertium", "model", or "apertium_reference"
            # (Apertium's translation, shown because the model's failed review).
            "va_source": va_source,
            "reference_model": translation.reference_model if translation else None,
            "smoke": bool((record and record.smoke) or (translation and translation.smoke)),
        },
    }


def translation_fell_back(translation: TranslationRecord) -> bool:
    """A model translation that failed its review and has Apertium's for every field."""
    return bool(translation.backend != "apertium" and translation.review is not None
                and translation.review.needs_attention and translation.segments
                and all(s.reference for s in translation.segments if s.source.strip()))


def update_document(client: Elasticsearch, names: IndexNames, doc_id: str,
                    fields: dict[str, Any]) -> bool:
    """Partial update of one document record; False when it was never indexed."""
    try:
        client.update(index=names.documents, id=doc_id, doc=fields,
                      retry_on_conflict=RETRY_ON_CONFLICT)
    except NotFoundError:
        return False
    return True


@dataclass
class StoredEnrichment:
    """What ``enrich_and_store`` did: ids enriched and stored, those needing attention,
    those generated now (not found in the store), and failed ones with their reason."""
    failed: dict[str, str]
    enriched: list[str] = field(default_factory=list)
    needs_attention: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)


def enrich_and_store(docs: Sequence[SourceDocument], settings: Settings,
                     client: Elasticsearch, names: IndexNames, failed: dict[str, str], *,
                     force: bool = False, translate: bool = True,
                     on_document: OnDocument | None = None) -> StoredEnrichment:
    """``enrich_documents`` with each outcome stored on its ``boe-documents`` record as it
    comes; a document that cannot be stored is a failed row, never the end of the run."""
    stored = StoredEnrichment(failed=failed)

    def store(outcome: DocumentOutcome) -> None:
        if outcome.error is None:
            try:
                if not update_document(client, names, outcome.doc_id,
                                       enrichment_fields(outcome)):
                    outcome.error = "not indexed: run the index step for it first"
            except Exception as exc:  # the document's row, not the day
                outcome.error = f"cannot store on {names.documents}: {_reason(exc)}"
        if outcome.error is not None:
            failed[outcome.doc_id] = outcome.error
        else:
            stored.enriched.append(outcome.doc_id)
            if outcome.needs_attention:
                stored.needs_attention.append(outcome.doc_id)
            if outcome.generated:
                stored.generated.append(outcome.doc_id)
        if on_document:
            on_document(outcome)

    enrich_documents(docs, settings, on_document=store, force=force, translate=translate)
    if docs:
        client.indices.refresh(index=names.documents)
    return stored


def iter_day(settings: Settings, when: date, size: int | None = None
             ) -> Iterator[tuple[list[SourceDocument], dict[str, str]]]:
    """The fetched documents of ``when`` (from the raw store) ``size`` at a time
    (``enrich_window_docs``), with those of each window that cannot be read: a day's texts
    are never all in memory at once."""
    from boeflow.boe.store import fetched_day_files

    size = size or settings.enrich_window_docs
    with tempfile.TemporaryDirectory() as workdir:
        files = fetched_day_files(settings, when, when, Path(workdir))
        for start in range(0, len(files), size):
            yield read_documents(files[start:start + size])


def read_documents(paths: Sequence[Path]) -> tuple[list[SourceDocument], dict[str, str]]:
    """The documents of ``paths``, and the reason each one that cannot be read fails (by
    its BOE id): one unreadable item never stops the others."""
    docs: list[SourceDocument] = []
    failed: dict[str, str] = {}
    for path in paths:
        try:
            docs.append(read_document(path))
        except Exception as exc:
            failed[path.stem] = _reason(exc)
    return docs, failed


def read_day(settings: Settings, when: date) -> tuple[list[SourceDocument], dict[str, str]]:
    """All the fetched documents of ``when`` at once, and those that cannot be read (for
    benchmarks and tools; the enrich step reads a window at a time with ``iter_day``)."""
    docs: list[SourceDocument] = []
    failed: dict[str, str] = {}
    for window, unreadable in iter_day(settings, when, size=1_000_000):
        docs += window
        failed.update(unreadable)
    return docs, failed
