"""The workbench's logic, without Airflow: a day's draft and published digests from the raw
store, the source text around each automatic-review flag, and the reviewer's answer (the
params of the approval step's HITL form) built from the page and checked before it is sent.

The answer has the keys of ``boeflow.airflow.approval.FORM``: ``excluir`` (BOE ids),
``correcciones`` (``id`` or ``id:va`` → corrected resumen), ``notas`` (id → note), ``nota``
(general note) and ``draft_hash`` (the hash of the draft the reviewer saw).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from boeflow.boe.store import RawStore, day_prefix
from boeflow.digest.model import Digest, Item, Summary
from boeflow.digest.publish import current_paths, published_days, read_digest

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
BOE_ID = re.compile(r"BOE-[A-Z]-\d{4}-\d{1,6}")
ANSWER_KEYS = ("excluir", "correcciones", "notas", "nota", "draft_hash")
_QUOTED = re.compile(r'"([^"]{3,200}?)…?"')
SPAN_CONTEXT = 160

# (boe_id, language, corrected summary) -> (passed, reasons)
Checker = Callable[[str, str, Summary], tuple[bool, list[str]]]


class BadId(ValueError):
    """A day or BOE id that is not one (path characters, wrong shape): refused."""


def parse_day(value: str | None) -> date:
    if not isinstance(value, str) or not DAY.fullmatch(value):
        raise BadId(f"not a day: {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadId(f"not a day: {value!r}") from None


def check_boe_id(value: str) -> str:
    if not isinstance(value, str) or not BOE_ID.fullmatch(value):
        raise BadId(f"not a BOE id: {value!r}")
    return value


def load_draft(store: RawStore, day: date) -> Digest | None:
    return read_digest(store, day, draft=True)


def published(store: RawStore) -> list[date]:
    return list(reversed(published_days(store)))


def published_html(store: RawStore, day: date) -> bytes | None:
    """The day's current published HTML (through the version pointer)."""
    path = current_paths(store, day).get("html")
    return store.read(path) if path and store.exists(path) else None


def source_text(store: RawStore, day: date, boe_id: str) -> str:
    """The document's text as the automatic review saw it: the item fetched into the raw
    store (XML, else HTML, else PDF), parsed; "" when the store has none."""
    from boeflow.parse import parse_bytes

    check_boe_id(boe_id)
    for ext in ("xml", "html", "pdf"):
        path = f"{day_prefix(day)}/items/{boe_id}.{ext}"
        if store.exists(path):
            try:
                return parse_bytes(store.read(path), path).text
            except Exception:  # a document that does not parse has no text to quote
                return ""
    return ""


@dataclass(frozen=True)
class Flag:
    """One automatic-review reason and, when it quotes the source, the passage around it."""

    reason: str
    quoted: str | None
    before: str = ""
    span: str = ""
    after: str = ""


def flags(reasons: list[str], text: str) -> list[Flag]:
    out: list[Flag] = []
    folded = text.casefold()
    for reason in reasons:
        found = _QUOTED.search(reason)
        quoted = found.group(1).strip() if found else None
        if quoted:
            at = folded.find(quoted.casefold())
            if at >= 0:
                end = at + len(quoted)
                out.append(Flag(reason, quoted, text[max(0, at - SPAN_CONTEXT):at],
                                text[at:end], text[end:end + SPAN_CONTEXT]))
                continue
        out.append(Flag(reason, quoted))
    return out


# --- the answer ---------------------------------------------------------------------------

@dataclass
class Problem:
    """Why an answer cannot be sent; ``boe_id``/``field`` say where the page shows it."""

    message: str
    boe_id: str | None = None
    field: str | None = None  # "excluir" | "es" | "va" | "nota_item" | "nota" | "draft"

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "boe_id": self.boe_id, "field": self.field}


@dataclass
class Submission:
    option: str
    params: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A text field as typed (its limits are ``boeflow.digest.decision``'s)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("a text field holds something else")
    return value


def submission(body: Mapping[str, Any], options: list[str]) -> Submission:
    """The page's JSON (``option``, ``excluir``, ``correcciones``, ``notas``, ``nota``,
    ``draft_hash``) as the HITL answer: every key of the form, texts as typed."""
    option = body.get("option")
    if option not in options:
        raise ValueError(f"option must be one of {options}")
    excluded = body.get("excluir") or []
    edits = body.get("correcciones") or {}
    notes = body.get("notas") or {}
    if not isinstance(excluded, list) or not all(isinstance(e, str) for e in excluded):
        raise ValueError("excluir must be a list of BOE ids")
    if not isinstance(edits, dict) or not isinstance(notes, dict):
        raise ValueError("correcciones and notas must be objects")
    params = {
        "excluir": list(dict.fromkeys(e.strip() for e in excluded if e.strip())),
        "correcciones": {str(k): _text(v) for k, v in edits.items()},
        "notas": {str(k): _text(v) for k, v in notes.items() if _text(v).strip()},
        "nota": _text(body.get("nota")).strip() or None,
        "draft_hash": _text(body.get("draft_hash")) or None,
    }
    return Submission(str(option), params)


_LOCATED = re.compile(r"^(excluir|correcciones|notas|nota|draft_hash)(?:\[([^\]]*)\])?:")


def locate(message: str) -> Problem:
    """Where a ``DecisionError`` belongs on the page: the item and control it names."""
    found = _LOCATED.match(message)
    key, inside = (found.group(1), (found.group(2) or "").strip("'\"")) if found else ("", "")
    named = BOE_ID.search(inside or message)
    boe_id = named.group(0) if named and key != "draft_hash" else None
    fields = {"excluir": "excluir", "notas": "nota_item", "nota": "nota",
              "draft_hash": "draft"}
    field_ = ("va" if inside.lower().endswith(":va") else "es") if key == "correcciones" \
        else fields.get(key)
    if key == "excluir" and boe_id is None:
        field_ = "draft"
    return Problem(message, boe_id if field_ not in ("nota", "draft") else None, field_)


def problems(draft: Digest, answer: Mapping[str, Any], checker: Checker | None) -> list[Problem]:
    """Everything that stops the answer (``boeflow.digest.decision``'s form: ``decision``,
    ``draft_hash``, ``excluir``…) from being sent: what ``validate_decision`` refuses (a stale
    draft, unknown ids, empty corrections…, one at a time, placed by its item), then every
    correction that fails the automatic review again. Empty: it can be sent."""
    from boeflow.digest.decision import DecisionError, validate_decision

    try:
        decision = validate_decision(draft, answer)
    except DecisionError as exc:
        return [locate(str(exc))]
    if checker is None or not decision.publishes:
        return []
    items = {i.boe_id: i for i in draft.all_items()}
    found: list[Problem] = []
    for key, text in decision.edits.items():
        boe_id, _, lang = key.partition(":")
        language = lang or "es"
        item = items[boe_id]
        current = item.summary_es if language == "es" else item.summary_va
        corrected = (current.model_copy(update={"resumen": text}) if current
                     else Summary(resumen=text))
        passed, reasons = checker(boe_id, language, corrected)
        if not passed:
            found.append(Problem("la corrección no pasa la revisión automática: "
                                 + "; ".join(reasons), boe_id, language))
    return found


def summary_text(item: Item, language: str) -> str:
    summary = item.summary_es if language == "es" else item.summary_va
    return summary.resumen if summary else ""
