"""A reviewer's decision on one draft digest, validated against that very draft.

Whatever the decision comes from (the Airflow approval form, the CLI's ``boeflow digest
approve``, a workbench), it is the same *answer*: a mapping with the HITL form's keys

    decision      approved | rejected | timed_out | without_review
    draft_hash    the hash of the draft the reviewer saw (the form is prefilled with it)
    excluir       BOE ids not to publish: a list, one id per element, or text, one per line;
                  a line may join ids with commas
    correcciones  {"BOE-A-…": "resumen corregido", "BOE-A-…:va": "resum corregit"}
    notas         {"BOE-A-…": "nota del revisor"}
    nota          the general note
    reviewer, reviewer_id, decided_at

``validate_decision(draft, answer)`` turns it into a typed ``Decision`` or raises one
``DecisionError`` whose message is one line naming the offending key, id or value. It fails
closed: an answer naming another draft (stale hash), an id that is not an item of the draft,
a correction key with a suffix other than ``:va`` (case-insensitive), an empty correction, a
correction or note of an excluded item, a value over its limit — any of these refuses the
whole decision, so nothing is published and nothing is recorded as excluded or edited unless
it is applied. Ids are normalised to the canonical ``BOE-X-YYYY-N`` by
``boeflow.core.ids.normalise_boe_id`` (lower case, Unicode hyphens, full-width forms) or
refused; nothing is guessed.

The limits (``docs/limits.md``, "Reviewer input") are constants: a decision is typed by a
person, and a bigger one is a mistake or an attack, not a configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from boeflow.core.errors import BoeflowError
from boeflow.core.ids import InvalidIdentifier, normalise_boe_id, shown
from boeflow.digest.build import ReviewInput
from boeflow.digest.model import Digest

DecisionKind = Literal["approved", "rejected", "timed_out", "without_review"]
DECISIONS: tuple[str, ...] = ("approved", "rejected", "timed_out", "without_review")
LANGUAGE_SUFFIX = ":va"

# Reviewer input limits (docs/limits.md).
MAX_EXCLUSIONS = 2000           # ids in `excluir` (a busy BOE day lists ~1,000 items)
MAX_CORRECTIONS = 200           # keys in `correcciones`
MAX_NOTES = 200                 # keys in `notas`
MAX_CORRECTION_CHARS = 4000     # one corrected resumen
MAX_NOTE_CHARS = 2000           # one item note
MAX_GENERAL_NOTE_CHARS = 4000   # `nota`
MAX_REVIEWER_CHARS = 200        # the reviewer's name or id
MAX_ID_TEXT_CHARS = 100_000     # the raw `excluir` text / one list element, before parsing


class DecisionError(BoeflowError, ValueError):
    """The reviewer's answer cannot be applied to this draft; the message is one line."""


class Decision(BaseModel):
    """A validated decision: canonical ids, every id an item of the draft ``draft_hash``."""

    model_config = ConfigDict(frozen=True)

    day: str
    draft_hash: str
    decision: DecisionKind
    reviewer: str | None = None
    reviewer_id: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    excluded: list[str] = Field(default_factory=list, description="canonical BOE ids")
    edits: dict[str, str] = Field(default_factory=dict,
                                  description="'BOE-X-YYYY-N' or 'BOE-X-YYYY-N:va' -> resumen")
    notes: dict[str, str] = Field(default_factory=dict, description="BOE id -> note")

    @property
    def publishes(self) -> bool:
        return self.decision in ("approved", "without_review")

    @property
    def edited(self) -> list[str]:
        """The BOE ids whose summaries the decision corrects."""
        return sorted({key.split(":")[0] for key in self.edits})

    def content_key(self) -> str:
        """What the publication is made of: the draft and the changes to it. Two decisions
        with the same content key publish the same digest (a republish is a no-op)."""
        return _hash({"draft_hash": self.draft_hash, "excluded": sorted(self.excluded),
                      "edits": self.edits, "notes": self.notes, "note": self.note})

    def key(self) -> str:
        """The decision's identity: its content, kind and reviewer (not its time), so that a
        rerun of the same answer is recognised and recorded once."""
        return _hash({"content": self.content_key(), "decision": self.decision,
                      "reviewer": self.reviewer})

    def review_input(self) -> ReviewInput:
        """The form ``boeflow.digest.build.apply_review`` applies."""
        return ReviewInput(decision=self.decision, reviewer=self.reviewer,
                           decided_at=self.decided_at, note=self.note,
                           excluded=list(self.excluded), edits=dict(self.edits),
                           notes=dict(self.notes))


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def _text(value: Any, key: str, limit: int) -> str | None:
    """An optional text field: stripped, None when blank, refused over ``limit``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecisionError(f"{key}: expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise DecisionError(f"{key}: {len(value)} characters, over the limit of {limit}")
    return value.strip() or None


def _canonical(value: str, key: str) -> str:
    try:
        return normalise_boe_id(value, f"{key}:")
    except InvalidIdentifier as exc:
        raise DecisionError(str(exc)) from None


def parse_ids(value: Any, key: str = "excluir") -> list[str]:
    """The ids of ``excluir``: a list (one id per element) or text (one per line); a line
    or element may join ids with commas. Blank entries are skipped, repeats kept once, any
    other token refused."""
    if value is None:
        return []
    elements: list[Any] = [value] if isinstance(value, str) else value
    if not isinstance(elements, list):
        raise DecisionError(f"{key}: expected a list of BOE ids or text, got "
                            f"{type(value).__name__}")
    ids: list[str] = []
    for element in elements:
        if not isinstance(element, str):
            raise DecisionError(f"{key}: {shown(element)} is not a BOE identifier")
        if len(element) > MAX_ID_TEXT_CHARS:
            raise DecisionError(f"{key}: an entry of {len(element)} characters, over the "
                                f"limit of {MAX_ID_TEXT_CHARS}")
        for line in element.splitlines():
            for token in line.split(","):
                if token.strip():
                    boe_id = _canonical(token, key)
                    if boe_id not in ids:
                        ids.append(boe_id)
                    if len(ids) > MAX_EXCLUSIONS:
                        raise DecisionError(f"{key}: more than {MAX_EXCLUSIONS} ids")
    return ids


def correction_key(key: Any) -> str:
    """``BOE-X-YYYY-N`` or ``BOE-X-YYYY-N:va`` (the suffix in any case); anything else is
    refused naming the key."""
    if not isinstance(key, str):
        raise DecisionError(f"correcciones: key {shown(key)} is not text")
    head, colon, suffix = key.strip().partition(":")
    if colon and suffix.strip().lower() != "va":
        raise DecisionError(f"correcciones: key {shown(key)}: the only language suffix is "
                            f"'{LANGUAGE_SUFFIX}' (Valencian)")
    boe_id = _canonical(head, "correcciones: key")
    return boe_id + (LANGUAGE_SUFFIX if colon else "")


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DecisionError(f"{key}: expected an object of BOE id -> text, got "
                            f"{type(value).__name__}")
    return value


def _decided_at(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise DecisionError(f"decided_at: {shown(value)} is not an ISO date-time")


def validate_decision(draft: Digest, answer: Mapping[str, Any]) -> Decision:
    """The reviewer's ``answer`` as a ``Decision`` on ``draft``, or one ``DecisionError``."""
    day = draft.date.isoformat()
    kind = answer.get("decision")
    if kind not in DECISIONS:
        raise DecisionError(f"decision: {shown(kind)} is not one of {', '.join(DECISIONS)}")
    if draft.status != "draft":
        raise DecisionError(f"the digest of {day} is {draft.status}, not a draft to review")
    named = answer.get("draft_hash")
    if not isinstance(named, str) or not named.strip():
        raise DecisionError(f"draft_hash: the decision does not name the draft of {day} it "
                            "answers")
    if named.strip().lower() != draft.draft_hash:
        raise DecisionError(f"draft_hash: the decision answers draft {shown(named.strip())}, "
                            f"but the draft of {day} is now {draft.draft_hash[:12]}…: review "
                            "the current draft")
    items = {item.boe_id for item in draft.all_items()}

    def known(boe_id: str, key: str) -> str:
        if boe_id not in items:
            raise DecisionError(f"{key}: {boe_id} is not an item of the draft of {day}")
        return boe_id

    excluded = [known(i, "excluir") for i in parse_ids(answer.get("excluir"))]
    raw_edits = _mapping(answer.get("correcciones"), "correcciones")
    if len(raw_edits) > MAX_CORRECTIONS:
        raise DecisionError(f"correcciones: {len(raw_edits)} corrections, over the limit of "
                            f"{MAX_CORRECTIONS}")
    edits: dict[str, str] = {}
    for raw_key, raw_text in raw_edits.items():
        key = correction_key(raw_key)
        known(key.split(":")[0], f"correcciones[{shown(raw_key)}]")
        text = _text(raw_text, f"correcciones[{key}]", MAX_CORRECTION_CHARS)
        if text is None:
            raise DecisionError(f"correcciones[{key}]: empty correction (leave the key out to "
                                "keep the summary)")
        if key in edits and edits[key] != text:
            raise DecisionError(f"correcciones: {key} is corrected twice with different texts")
        if key.split(":")[0] in excluded:
            raise DecisionError(f"correcciones[{key}]: the item is also excluded")
        edits[key] = text
    raw_notes = _mapping(answer.get("notas"), "notas")
    if len(raw_notes) > MAX_NOTES:
        raise DecisionError(f"notas: {len(raw_notes)} notes, over the limit of {MAX_NOTES}")
    notes: dict[str, str] = {}
    for raw_key, raw_text in raw_notes.items():
        if not isinstance(raw_key, str):
            raise DecisionError(f"notas: key {shown(raw_key)} is not text")
        boe_id = known(_canonical(raw_key, "notas: key"), f"notas[{shown(raw_key)}]")
        text = _text(raw_text, f"notas[{boe_id}]", MAX_NOTE_CHARS)
        if text is None:
            continue
        if boe_id in excluded:
            raise DecisionError(f"notas[{boe_id}]: the item is also excluded")
        if boe_id in notes and notes[boe_id] != text:
            raise DecisionError(f"notas: {boe_id} has two different notes")
        notes[boe_id] = text
    if kind not in ("approved", "without_review") and (excluded or edits or notes):
        # A rejection publishes nothing: recording exclusions or edits would claim changes
        # that are never applied.
        excluded, edits, notes = [], {}, {}
    reviewer = _text(answer.get("reviewer"), "reviewer", MAX_REVIEWER_CHARS)
    reviewer_id = _text(answer.get("reviewer_id"), "reviewer_id", MAX_REVIEWER_CHARS)
    return Decision(day=day, draft_hash=draft.draft_hash, decision=kind,
                    reviewer=reviewer, reviewer_id=reviewer_id,
                    decided_at=_decided_at(answer.get("decided_at")),
                    note=_text(answer.get("nota"), "nota", MAX_GENERAL_NOTE_CHARS),
                    excluded=excluded, edits=edits, notes=notes)


PUBLISH = "Publicar"
REJECT = "Rechazar"


def answer_from_hitl(response: Mapping[str, Any] | None, publish_on_timeout: bool,
                     shown_hash: str | None = None) -> dict[str, Any] | None:
    """The answer of the Airflow approval step (its result: ``chosen_options``,
    ``params_input``, ``responded_by_user``, ``responded_at``) in the form
    ``validate_decision`` reads; None when the step did not ask (nothing to review).
    Nobody answering in time is ``timed_out`` (or ``without_review`` when the day may be
    published on timeout); the form's defaults, the prefilled ``draft_hash`` included, are
    what Airflow applied; when they lack the hash, it is ``shown_hash``, the hash of the
    draft the step showed (the build task's result)."""
    if not response:
        return None
    chosen = list(response.get("chosen_options") or [])
    params = dict(response.get("params_input") or {})
    user = response.get("responded_by_user") or None
    at = response.get("responded_at")
    answer: dict[str, Any] = {key: params.get(key) for key in
                              ("draft_hash", "excluir", "correcciones", "notas", "nota")}
    answer["decided_at"] = at if isinstance(at, (str, datetime)) else None
    if user is None:  # nobody answered: Airflow applied the defaults after response_timeout
        answer.update(decision="without_review" if publish_on_timeout and chosen == [PUBLISH]
                      else "timed_out", reviewer=None, excluir=None, correcciones=None,
                      notas=None, nota="sin respuesta del revisor en el plazo configurado")
        answer["draft_hash"] = answer.get("draft_hash") or shown_hash
        return answer
    if chosen not in ([PUBLISH], [REJECT]):
        raise DecisionError(f"chosen_options: {shown(chosen)} is not [{PUBLISH!r}] or "
                            f"[{REJECT!r}]")
    answer["decision"] = "approved" if chosen == [PUBLISH] else "rejected"
    answer["reviewer"] = str(user.get("name") or user.get("id") or "") or None
    answer["reviewer_id"] = str(user["id"]) if user.get("id") is not None else None
    return answer


def decision_from_row(day: str, row: Mapping[str, Any]) -> Decision:
    """A decision as recorded in ``review_decisions`` (to finish its publication)."""
    return Decision(day=day, draft_hash=row["draft_hash"], decision=row["decision"],
                    reviewer=row.get("reviewer"), reviewer_id=row.get("reviewer_id"),
                    decided_at=row.get("decided_at"), note=row.get("note"),
                    excluded=list(row.get("excluded") or []),
                    edits={k: str(v["resumen"] if isinstance(v, Mapping) else v)
                           for k, v in dict(row.get("edits") or {}).items()},
                    notes=dict(row.get("notes") or {}))
