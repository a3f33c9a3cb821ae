"""The structured summary, its parsing from model text, and the stored output records.

Model output is parsed leniently (code fences, prose around the JSON object, trailing
commas, a string where a list is expected) and then validated strictly: a summary either
validates against ``Summary`` or is reported invalid with the reason, never half-accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from boeflow.review.model import ReviewResult

if TYPE_CHECKING:
    from boeflow.core.settings import Settings

# Hard bounds of the schema (any mode); ``LengthPolicy`` is the per-mode policy inside them.
RESUMEN_MAX_CHARS = 2000
MAX_LIST_ITEMS = 12
MAX_ITEM_CHARS = 600
RESUMEN_MIN_CHARS = 40

SUMMARY_FIELDS = ("resumen", "puntos_clave", "a_quien_afecta", "plazos_y_fechas",
                  "entrada_en_vigor", "normas_afectadas")


class Summary(BaseModel):
    """What reviewers read: a Spanish summary of one BOE document."""

    resumen: str = Field(min_length=1, max_length=RESUMEN_MAX_CHARS)
    puntos_clave: list[str] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    a_quien_afecta: str = Field(min_length=1, max_length=MAX_ITEM_CHARS)
    plazos_y_fechas: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    entrada_en_vigor: str = Field(min_length=1, max_length=MAX_ITEM_CHARS)
    normas_afectadas: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)

    @field_validator("resumen", "a_quien_afecta", "entrada_en_vigor", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("puntos_clave", "plazos_y_fechas", "normas_afectadas", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [line for line in re.split(r"\n+|;\s+", value)]
        if isinstance(value, list):
            # A leading bullet or list number is dropped, unless it is all the item holds.
            items = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", str(v)).strip() or str(v).strip()
                     for v in value]
            return [item for item in items if item]
        return value

    @field_validator("puntos_clave", "plazos_y_fechas", "normas_afectadas")
    @classmethod
    def _bounded_items(cls, value: list[str]) -> list[str]:
        for item in value:
            if len(item) > MAX_ITEM_CHARS:
                raise ValueError(f"item longer than {MAX_ITEM_CHARS} characters")
        return value

    def text_fields(self) -> dict[str, str]:
        """Every field as text, for checks that read prose."""
        return {
            "resumen": self.resumen,
            "puntos_clave": "\n".join(self.puntos_clave),
            "a_quien_afecta": self.a_quien_afecta,
            "plazos_y_fechas": "\n".join(self.plazos_y_fechas),
            "entrada_en_vigor": self.entrada_en_vigor,
            "normas_afectadas": "\n".join(self.normas_afectadas),
        }


@dataclass(frozen=True)
class LengthPolicy:
    """The one length policy of a summary mode, shared by the prompt (what is asked), the
    structured decoder (what can be generated), ``fit_summary`` (what is stored) and the
    review's form check (what is flagged). Length is never a faithfulness matter: a summary
    longer than its mode allows is trimmed at a sentence boundary, not flagged."""

    mode: Literal["short", "long"]
    resumen_max: int
    resumen_min: int = RESUMEN_MIN_CHARS
    points: tuple[int, int] = (3, 5)
    max_dates: int = 4
    max_norms: int = 4
    item_max: int = MAX_ITEM_CHARS
    max_items: int = MAX_LIST_ITEMS  # what the form check allows in a list: the schema's

    @property
    def sentences(self) -> str:
        return "una o dos frases" if self.mode == "short" else "tres a cinco frases"


# (points min–max, dates max, norms max) per mode: short notices vs one-pass/map-reduce.
LIST_POLICY: dict[bool, tuple[tuple[int, int], int, int]] = {
    True: ((1, 3), 2, 2), False: ((3, 5), 4, 4)}


def length_policy(settings: Settings, short: bool) -> LengthPolicy:
    """Short notices (sections 2 and 5) vs everything else (one pass or map-reduce)."""
    points, dates, norms = LIST_POLICY[short]
    limit = (settings.summary_short_resumen_max_chars if short
             else settings.summary_resumen_max_chars)
    return LengthPolicy("short" if short else "long", min(limit, RESUMEN_MAX_CHARS),
                        points=points, max_dates=dates, max_norms=norms)


_SENTENCE_END = re.compile(r"(?<=[.;:!?»)])\s+")


def trim_text(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` at the last sentence end that fits, else at a word
    boundary with an ellipsis."""
    if len(text) <= max_chars:
        return text
    ends = [m.start() for m in _SENTENCE_END.finditer(text) if m.start() <= max_chars]
    if ends and ends[-1] >= max_chars // 3:
        return text[:ends[-1]].rstrip()
    cut = text[:max_chars - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def fit_summary(summary: Summary, policy: LengthPolicy) -> Summary:
    """``summary`` within ``policy``: the resumen trimmed at a sentence boundary. Lists are
    never cut (a dropped item would hide its facts from the review): the mode's list bounds
    steer the prompt and the decoder, and the schema's ``MAX_LIST_ITEMS`` bounds the rest.
    Idempotent; a summary already within the policy is unchanged."""
    return summary.model_copy(update={"resumen": trim_text(summary.resumen,
                                                           policy.resumen_max)})


def summary_json_schema() -> dict[str, Any]:
    return Summary.model_json_schema()


class ParseOutcome(BaseModel):
    summary: Summary | None = None
    error: str = ""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _json_candidates(text: str) -> list[str]:
    """Substrings that may hold the JSON object, most likely first."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start = text.find("{")
    if start >= 0:
        end = text.rfind("}")
        if end > start:
            candidates.append(text[start:end + 1])
        else:
            candidates.append(text[start:] + "}")  # cut off by max_new_tokens
    return candidates


def _loosen(candidate: str) -> str:
    fixed = re.sub(r",\s*([}\]])", r"\1", candidate)  # trailing commas
    return fixed.replace("“", '"').replace("”", '"')


def parse_summary(text: str) -> ParseOutcome:
    """Parse and validate model output; the error says what to repair."""
    if not text.strip():
        return ParseOutcome(error="respuesta vacía")
    last_error = "no hay ningún objeto JSON en la respuesta"
    for candidate in _json_candidates(text):
        for attempt in (candidate, _loosen(candidate)):
            try:
                data = json.loads(attempt)
            except json.JSONDecodeError as exc:
                last_error = f"JSON inválido: {exc.msg} (posición {exc.pos})"
                continue
            if not isinstance(data, dict):
                last_error = "el JSON no es un objeto"
                continue
            try:
                return ParseOutcome(summary=Summary.model_validate(data))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                    for err in exc.errors()[:6])
                last_error = f"el JSON no cumple el esquema: {problems}"
    return ParseOutcome(error=last_error)


class PromptLog(BaseModel):
    """One prompt sent to a model: the budget check is recorded, not assumed."""

    stage: Literal["map", "reduce", "final", "short", "repair", "translate"]
    level: int = 0
    index: int = 0
    prompt_tokens: int
    max_new_tokens: int
    context_length: int
    completion_tokens: int = 0
    cached: bool = False

    @property
    def fits(self) -> bool:
        return self.prompt_tokens + self.max_new_tokens <= self.context_length


class RecordBase(BaseModel):
    doc_id: str
    cache_key: str
    model: str
    revision: str | None = None
    prompt_version: str
    source_hash: str
    backend: str
    smoke: bool = Field(description="made by a smoke model: NOT meaningful")
    status: Literal["ok", "failed"]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    prompts: list[PromptLog] = Field(default_factory=list)
    generate_calls: int = 0
    review: ReviewResult | None = None


class SummaryRecord(RecordBase):
    kind: Literal["summary"] = "summary"
    mode: Literal["short", "one_pass", "map_reduce"]
    title: str = ""
    summary: Summary | None = None
    raw_text: str = Field("", description="the model's last answer, kept even when invalid")
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)
    structured: bool = Field(False, description="decoded under the summary's JSON schema")


class TranslatedSegment(BaseModel):
    field: str
    source: str
    text: str
    raw_text: str = ""
    placeholders_missing: list[str] = Field(default_factory=list)
    reference: str | None = Field(None, description="Apertium's translation of the same "
                                  "source: the review's cross-check of a model translation, "
                                  "and what the digest shows when the model's fails review")
    review: ReviewResult | None = Field(None, description="the review of this field alone")


class TranslationRecord(RecordBase):
    kind: Literal["translation"] = "translation"
    source_language: Literal["es", "va"]
    target_language: Literal["es", "va"]
    segments: list[TranslatedSegment] = Field(default_factory=list)
    reference_model: str | None = Field(None, description="what made the segments' "
                                        "references, e.g. apertium:spa-cat_valencia@…")

    def text(self) -> str:
        return "\n".join(s.text for s in self.segments)
