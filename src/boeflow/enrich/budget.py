"""Token budgets: split and pack text so that every prompt fits the model's context.

Counts come from the model's own tokenizer. Packing sums piece counts (plus a separator
allowance); callers still count each rendered prompt and split further if it is over, so
the guarantee never rests on the sum being exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

SEPARATOR_TOKENS = 2
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+")


def hard_split(text: str, budget: int, tokenizer: Any) -> list[str]:
    """Cut at token boundaries; 90 % of the budget because re-encoding decoded text can
    produce a few more tokens than were sliced."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = max(1, int(budget * 0.9))
    return [tokenizer.decode(ids[i:i + step]) for i in range(0, len(ids), step)]


def split_to_budget(text: str, budget: int, count: Callable[[str], int],
                    tokenizer: Any) -> list[str]:
    """``text`` as pieces of at most ``budget`` tokens, cut at lines, then sentences,
    then tokens."""
    if count(text) <= budget:
        return [text]
    for splitter in (lambda t: t.split("\n"), _SENTENCE_END.split):
        parts = [p for p in splitter(text) if p.strip()]
        if len(parts) > 1:
            pieces: list[str] = []
            for part in parts:
                pieces.extend(split_to_budget(part, budget, count, tokenizer))
            return [text for text, _ in pack([(p, count(p)) for p in pieces], budget)]
    return hard_split(text, budget, tokenizer)


def pack(pieces: list[tuple[str, int]], budget: int,
         separator: str = "\n") -> list[tuple[str, int]]:
    """Consecutive pieces joined greedily into groups of at most ``budget`` tokens."""
    groups: list[tuple[str, int]] = []
    current: list[str] = []
    used = 0
    for text, tokens in pieces:
        cost = tokens + (SEPARATOR_TOKENS if current else 0)
        if current and used + cost > budget:
            groups.append((separator.join(current), used))
            current, used = [], 0
            cost = tokens
        current.append(text)
        used += cost
    if current:
        groups.append((separator.join(current), used))
    return groups
