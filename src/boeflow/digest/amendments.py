"""Amendment cards of the digest: the ``legal_links`` of an item (``boeflow.enrich.links``) as
cards with a word-level before/after difference (issue 22)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from boeflow.core.ids import is_boe_id
from boeflow.core.site import BOE_ORIGIN, safe_boe_url
from boeflow.digest.model import AmendmentCard, BlockCard, DiffPart

CHANGING = ("modifica", "añade", "suprime", "deroga", "corrige")
COLLAPSED = ("de_conformidad",)
_TOKEN = re.compile(r"\n|\S+")  # words, and paragraph breaks as tokens of their own
CONTEXT_WORDS = 12  # unchanged words kept on each side of a change


def word_diff(before: str, after: str, context: int = CONTEXT_WORDS) -> list[DiffPart]:
    """Word-level difference; long unchanged runs are cut to ``context`` words either side
    (the cut is a ``skip`` part holding how many words were left out)."""
    old, new = _TOKEN.findall(before), _TOKEN.findall(after)

    def text(words: list[str]) -> str:
        return "".join(w if w == "\n" else w + " " for w in words)

    parts: list[DiffPart] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    opcodes = matcher.get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            words = old[i1:i2]
            head = [] if n == 0 else words[:context]
            tail = [] if n == len(opcodes) - 1 else words[-context:]
            if len(words) > len(head) + len(tail) + 3:
                if head:
                    parts.append(DiffPart(op="equal", text=text(head)))
                parts.append(DiffPart(op="skip", text=str(len(words) - len(head) - len(tail))))
                if tail:
                    parts.append(DiffPart(op="equal", text=text(tail)))
            else:
                parts.append(DiffPart(op="equal", text=text(words)))
            continue
        if tag in ("delete", "replace"):
            parts.append(DiffPart(op="delete", text=text(old[i1:i2])))
        if tag in ("insert", "replace"):
            parts.append(DiffPart(op="insert", text=text(new[j1:j2])))
    return parts


def _text(side: Mapping[str, Any] | None) -> str | None:
    return str(side.get("text") or "") if side else None


def _version(side: Mapping[str, Any] | None) -> str | None:
    return str((side.get("version") or {}).get("id_norma") or "") or None if side else None


def _law_url(ref: Mapping[str, Any]) -> str:
    """The law's ELI or page, validated to https on the BOE site like every link of the
    digest (``boeflow.core.site``); else its consolidated page built from its validated id."""
    for candidate in (ref.get("target_eli"), ref.get("target_url")):
        url = safe_boe_url(str(candidate)) if candidate else None
        if url:
            return url
    target = str(ref.get("target") or "")
    return (f"{BOE_ORIGIN}/buscar/act.php?id={target}" if is_boe_id(target)
            else f"{BOE_ORIGIN}/buscar/legislacion.php")


def cards(legal_links: Mapping[str, Any] | None) -> list[AmendmentCard]:
    """Cards for the references that change a law or act in accordance with one of its
    blocks; plain citations and references without blocks give none."""
    out: list[AmendmentCard] = []
    for ref in (legal_links or {}).get("references", []):
        relation = str(ref.get("relation") or "")
        if relation not in CHANGING + COLLAPSED or not ref.get("blocks"):
            continue
        blocks: list[BlockCard] = []
        for block in ref["blocks"]:
            before, after = block.get("before"), block.get("after")
            card = BlockCard(
                block_id=block.get("block_id"), title=str(block.get("title") or ""),
                status=block.get("status", "not_found"), before=_text(before),
                after=_text(after), before_version=_version(before),
                after_version=_version(after),
                after_from_item=bool(after and after.get("source") == "amending_item"))
            if relation in CHANGING and card.after is not None:
                card.diff = word_diff(card.before or "", card.after)
            blocks.append(card)
        out.append(AmendmentCard(
            relation=relation, target=str(ref.get("target")),
            target_title=ref.get("target_title"), text=str(ref.get("text") or ""),
            in_consolidated=not ref.get("error"),
            url=_law_url(ref),
            collapsed=relation in COLLAPSED, blocks=blocks))
    # What changes a law comes first, then what acts in accordance with one.
    return sorted(out, key=lambda card: card.collapsed)
