"""A review decision is validated against the draft it answers and fails closed (issue 17,
finding 1 and 2, point 5's reviewer bounds): on the real 2024-11-06 draft (238 items)."""

from __future__ import annotations

from typing import Any

import pytest

from boeflow.boe.manifest import DayManifest
from boeflow.core.ids import InvalidIdentifier, normalise_boe_id
from boeflow.digest import decision as dec
from boeflow.digest.build import apply_review
from boeflow.digest.decision import (
    DecisionError,
    answer_from_hitl,
    validate_decision,
)
from boeflow.digest.model import Digest
from tests.unit.test_digest import _checker, _nov6, fetched  # noqa: F401 (fixture)

A, B, C = "BOE-A-2024-22928", "BOE-A-2024-22930", "BOE-A-2024-22931"


@pytest.fixture(scope="module")
def draft(fetched: dict[str, DayManifest]) -> Digest:  # noqa: F811
    return _nov6(fetched)


def answer(draft: Digest, **extra: Any) -> dict[str, Any]:
    return {"decision": "approved", "draft_hash": draft.draft_hash, "reviewer": "revisora",
            **extra}


def refused(draft: Digest, match: str, **extra: Any) -> str:
    with pytest.raises(DecisionError, match=match) as info:
        validate_decision(draft, answer(draft, **extra))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


def test_normalise_boe_id() -> None:
    assert normalise_boe_id("boe-a-2024-23541") == "BOE-A-2024-23541"
    assert normalise_boe_id("BOE\u2011A\u20112024\u201123542") == "BOE-A-2024-23542"
    assert normalise_boe_id("\u00a0BOE\u2013A\u22122024-1\u200b ") == "BOE-A-2024-1"
    assert normalise_boe_id("ＢＯＥ－Ａ－２０２４－１") == "BOE-A-2024-1"
    for bad in ("BOE-A-2024-1, BOE-A-2024-2", "BOE-A-٢٠٢٤-1", "BOE-A-2024-1x", "BOE A 2024 1",
                "", "BOE-A-2024-123456789"):
        with pytest.raises(InvalidIdentifier):
            normalise_boe_id(bad)


def test_finding_1_ids_comma_joined_lower_case_and_unicode_hyphens_are_applied(
        draft: Digest) -> None:
    """The red team's answer: every one of these ids was ignored on main (published anyway)
    while the record listed them as excluded/edited."""
    D = "BOE-A-2024-22929"
    raw = [f"{B}, {C}", D.lower()]
    decision = validate_decision(draft, answer(
        draft, excluir=raw, correcciones={A.replace("-", "\u2011") + ":VA": "Resum."}))
    assert decision.excluded == [B, C, D]
    assert decision.edits == {f"{A}:va": "Resum."}
    final = apply_review(draft, decision.review_input(), _checker)
    ids = {i.boe_id for i in final.all_items()}
    assert not ids & {B, C, D} and len(ids) == draft.header.items - 3
    assert [e.boe_id for e in final.excluded] == [B, C, D]
    item = next(i for i in final.all_items() if i.boe_id == A)
    assert item.summary_va is not None and item.summary_va.resumen == "Resum."
    assert final.decision is not None and final.decision.edited == [A]
    assert final.decision.excluded == [B, C, D]
    # Text, one per line, is the same answer.
    text = validate_decision(draft, answer(draft, excluir=f"{A}\n{B},{C}\n\n"))
    assert text.excluded == [A, B, C]


def test_any_unknown_or_malformed_id_refuses_the_whole_decision(draft: Digest) -> None:
    assert "BOE-A-2024-1 is not an item" in refused(draft, "excluir", excluir=[A, "BOE-A-2024-1"])
    refused(draft, r"excluir.*'BOE-A-2024-22928 BOE-A-2024-22930'",
            excluir=[f"{A} {B}"])  # blanks are not separators: nothing is guessed
    refused(draft, "excluir", excluir={"id": A})
    refused(draft, "excluir", excluir=[7])
    refused(draft, "only language suffix is ':va'", correcciones={f"{A}:es": "x"})
    refused(draft, "only language suffix", correcciones={f"{A}:VAL": "x"})
    refused(draft, r"correcciones\[.*BOE-A-2024-1.*not an item",
            correcciones={"boe-a-2024-1": "x"})
    refused(draft, "empty correction", correcciones={A: "   "})
    refused(draft, "empty correction", correcciones={A: None})
    refused(draft, "also excluded", excluir=[A], correcciones={A.lower(): "x"})
    refused(draft, "also excluded", excluir=[A], notas={A: "x"})
    refused(draft, "corrected twice", correcciones={A: "x", A.lower(): "y"})
    refused(draft, "notas.*not an item", notas={"BOE-B-2024-1": "x"})
    refused(draft, "decision", decision="maybe")


def test_finding_2_the_decision_names_its_draft(draft: Digest) -> None:
    message = refused(draft, "draft_hash", draft_hash="0" * 64)
    assert "0000" in message and draft.draft_hash[:12] in message
    refused(draft, "does not name the draft", draft_hash=None)
    refused(draft, "does not name the draft", draft_hash="")
    assert validate_decision(draft, answer(draft, draft_hash=draft.draft_hash.upper()))


def test_reviewer_input_limits_name_the_entry(draft: Digest) -> None:
    refused(draft, rf"correcciones\[{A}\]: 4001 characters, over the limit of 4000",
            correcciones={A: "x" * 4001})
    refused(draft, rf"notas\[{A}\]: 2001 characters", notas={A: "x" * 2001})
    refused(draft, "nota: 4001 characters", nota="x" * 4001)
    refused(draft, "201 corrections, over the limit of 200",
            correcciones={f"BOE-A-2024-{n}": "x" for n in range(201)})
    refused(draft, "201 notes", notas={f"BOE-A-2024-{n}": "x" for n in range(201)})
    refused(draft, "more than 2000 ids",
            excluir=[f"BOE-A-2024-{n}" for n in range(2001)])
    refused(draft, "over the limit of 100000", excluir=["x" * 100_001])
    ok = validate_decision(draft, answer(draft, correcciones={A: "x" * 4000},
                                         nota="y" * 4000))
    assert ok.edits[A] == "x" * 4000


def test_keys_and_rejections_record_nothing_unapplied(draft: Digest) -> None:
    one = validate_decision(draft, answer(draft, excluir=[A.lower()],
                                          decided_at="2024-11-06T10:00:00+01:00"))
    two = validate_decision(draft, answer(draft, excluir=[A],
                                          decided_at="2024-11-06T11:00:00+01:00"))
    assert one.key() == two.key() and one.content_key() == two.content_key()
    other = validate_decision(draft, answer(draft, excluir=[A], reviewer="otra"))
    assert other.key() != one.key() and other.content_key() == one.content_key()
    rejected = validate_decision(draft, answer(draft, decision="rejected", excluir=[A]))
    assert rejected.excluded == [] and rejected.edits == {} and not rejected.publishes


def test_answer_from_hitl(draft: Digest) -> None:
    assert answer_from_hitl(None, False) is None
    response = {"chosen_options": [dec.PUBLISH], "responded_by_user": {"id": "7", "name": "ana"},
                "responded_at": "2024-11-06T10:00:00+00:00",
                "params_input": {"draft_hash": draft.draft_hash, "excluir": [B.lower()],
                                 "correcciones": {f"{A}:Va": "Resum."}, "notas": {},
                                 "nota": " ok "}}
    got = answer_from_hitl(response, False)
    assert got is not None
    decision = validate_decision(draft, got)
    assert (decision.reviewer, decision.reviewer_id, decision.note) == ("ana", "7", "ok")
    assert decision.excluded == [B] and decision.edits == {f"{A}:va": "Resum."}
    timeout = answer_from_hitl({"chosen_options": [dec.REJECT], "params_input":
                                {"draft_hash": draft.draft_hash}}, False)
    assert timeout is not None and validate_decision(draft, timeout).decision == "timed_out"
    on_timeout = answer_from_hitl({"chosen_options": [dec.PUBLISH], "params_input":
                                   {"draft_hash": draft.draft_hash}}, True)
    assert on_timeout is not None
    assert validate_decision(draft, on_timeout).decision == "without_review"
    with pytest.raises(DecisionError, match="chosen_options"):
        answer_from_hitl({**response, "chosen_options": []}, False)
