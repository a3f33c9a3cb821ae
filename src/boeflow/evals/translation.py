"""``boeflow eval translation``: translation quality against a line-aligned reference.

Line N of the source is translated and scored against line N of the reference with
sacrebleu (corpus chrF and BLEU). ``facts_preserved`` is the share of lines whose BOE ids,
citations, dates, amounts, percentages, article references, deadlines and numbers all come
through unchanged, by the review's own extraction (``boeflow.review.checks
.source_facts_missing``). ``worst`` lists the ten lines of lowest sentence chrF.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from boeflow.core.paths import shipped
from boeflow.core.settings import Settings
from boeflow.enrich.cache import EnrichStore
from boeflow.enrich.translate import TranslationJob, apertium_for, make_translator

EvalBackend = Literal["apertium", "model", "http"]
SHIPPED_DIR = shipped("samples", "translation", "pilar-dogv")
SHIPPED_SOURCE = SHIPPED_DIR / "dev_es.txt"
SHIPPED_REFERENCE = SHIPPED_DIR / "dev_va.txt"
WORST = 10


class EvalSetError(ValueError):
    """The source and reference files cannot be used (missing, empty, not aligned)."""


class _Unstored(EnrichStore):
    """An evaluation neither reads nor writes the enrich store: every line is translated."""

    def load_record(self, doc_id: str, kind: str, key: str, model: Any) -> Any:
        return None

    def save_record(self, record: BaseModel, doc_id: str, kind: str, key: str) -> Path:
        return self.record_path(doc_id, kind, key)


def read_pairs(source: Path, reference: Path, limit: int | None = None
               ) -> tuple[list[str], list[str]]:
    try:
        src = source.read_text(encoding="utf-8").splitlines()
        ref = reference.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"cannot read the evaluation set: {exc}") from exc
    if len(src) != len(ref):
        raise EvalSetError(f"{source} has {len(src)} lines and {reference} {len(ref)}: "
                           "line N of one must translate line N of the other")
    if limit is not None:
        src, ref = src[:limit], ref[:limit]
    if not src:
        raise EvalSetError(f"{source} has no lines to translate")
    return src, ref


def translate_lines(settings: Settings, lines: list[str], backend: EvalBackend) -> list[str]:
    """The translations (es→va) of ``lines`` by ``backend``, one line per record."""
    if backend == "apertium":
        return apertium_for(settings, "es", "va").translate(lines)
    run = settings.model_copy(update={"translate_backend": backend, "translate_reference": False})
    translator = make_translator(run, store=_Unstored(run))
    jobs = [TranslationJob(f"eval-{n}", [("linea", line)], "es", "va")
            for n, line in enumerate(lines, 1)]
    outputs: list[str] = []
    for result in translator.translate_many(jobs, force=True):
        if isinstance(result, Exception):
            outputs.append("")
        else:
            outputs.append(result.segments[0].text if result.segments else "")
    return outputs


def evaluate_translation(settings: Settings, source: Path, reference: Path,
                         backend: EvalBackend = "apertium",
                         limit: int | None = None) -> dict[str, Any]:
    """``{"backend", "n", "chrf", "bleu", "facts_preserved", "sentences_per_s", "worst"}``
    (plus ``model`` and ``smoke``: a smoke model's figures mean nothing)."""
    import sacrebleu

    from boeflow.review.checks import chrf, source_facts_missing

    src, ref = read_pairs(source, reference, limit)
    started = time.perf_counter()
    outputs = translate_lines(settings, src, backend)
    elapsed = time.perf_counter() - started
    kept = sum(1 for s, o in zip(src, outputs, strict=True) if not source_facts_missing(s, o)[1])
    scored = sorted(((chrf(o, r), n) for n, (o, r) in enumerate(zip(outputs, ref, strict=True))),
                    key=lambda pair: pair[0])
    if backend == "apertium":
        model, smoke = f"apertium:{settings.translate_apertium_mode}", False
    else:
        model, smoke = settings.translator_model, settings.is_smoke
    return {
        "backend": backend, "model": model, "smoke": smoke, "n": len(src),
        "chrf": round(float(sacrebleu.corpus_chrf(outputs, [ref]).score), 2),
        "bleu": round(float(sacrebleu.corpus_bleu(outputs, [ref]).score), 2),
        "facts_preserved": round(kept / len(src), 4),
        "sentences_per_s": round(len(src) / elapsed, 1) if elapsed > 0 else None,
        "worst": [{"line": n + 1, "source": src[n], "output": outputs[n], "reference": ref[n],
                   "chrf": round(score, 1)} for score, n in scored[:WORST]],
    }
