"""Entry points used by the CLI and the DAGs: summarise, translate and review a document."""

from __future__ import annotations

import json
from typing import Literal

from boeflow.core.settings import Settings
from boeflow.enrich.backends import Backend, get_backend
from boeflow.enrich.cache import EnrichStore
from boeflow.enrich.schema import SummaryRecord, TranslationRecord
from boeflow.enrich.summarize import Summarizer, review_record
from boeflow.enrich.translate import make_translator, review_translation_record
from boeflow.review import CheckResult, ReviewResult, detect_language
from boeflow.review.source import SourceDocument, load_source

Lang = Literal["es", "va"]
Record = SummaryRecord | TranslationRecord


def summarize(settings: Settings, ref: str, *, force: bool = False,
              backend: Backend | None = None) -> tuple[SourceDocument, SummaryRecord]:
    doc = load_source(settings, ref)
    summarizer = Summarizer(settings, backend or get_backend(settings, "summarizer"))
    return doc, summarizer.summarize(doc, force=force)


def source_language(text: str) -> Lang:
    lang, _ = detect_language(text)
    return "va" if lang == "ca" else "es"


def translate_fields(settings: Settings, doc_id: str, fields: list[tuple[str, str]],
                     target: Lang, *, source: Lang | None = None, force: bool = False,
                     backend: Backend | None = None) -> TranslationRecord:
    detected = source or source_language("\n".join(text for _, text in fields))
    if detected == target:
        raise ValueError(f"the text is already in {target} (detected {detected}); "
                         "nothing to translate")
    translator = make_translator(settings, backend=backend)
    return translator.translate(doc_id, fields, detected, target, force=force)


def document_fields(doc: SourceDocument) -> list[tuple[str, str]]:
    """Title and sections of a source document, as translatable fields."""
    return [("titulo", doc.title)] + [(f"seccion.{i}", s.text)
                                     for i, s in enumerate(doc.sections) if s.text.strip()]


def review_stored(settings: Settings, doc_id: str) -> list[Record]:
    """Re-run the automatic review on every stored output of ``doc_id`` and store it."""
    store = EnrichStore(settings)
    records: list[Record] = []
    doc: SourceDocument | None = None
    for path in store.record_files(doc_id):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") == "summary":
            summary = SummaryRecord.model_validate(data)
            if doc is None:
                doc = load_source(settings, doc_id)
            review = review_record(summary, doc, settings)
            if doc.source_hash != summary.source_hash:
                review = ReviewResult.of([*review.checks, CheckResult(
                    name="fuente", score=0.0, flagged=True,
                    reasons=["el documento fuente ha cambiado desde que se generó el resumen"])])
            summary.review = review
            records.append(summary)
        elif data.get("kind") == "translation":
            translation = TranslationRecord.model_validate(data)
            review_translation_record(translation, settings)
            records.append(translation)
        else:
            continue
        store.rewrite_record(path, records[-1])
    return records
