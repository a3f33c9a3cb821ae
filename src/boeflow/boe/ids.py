"""The BOE identifier grammar: the one definition every stage uses.

``BOE-<letter>-<year>-<number>``: ``BOE-A-2024-22928`` (dispositions), ``BOE-B-…``
(announcements), ``BOE-S-2024-268`` (a day's sumario). Identifiers come from the network
and become file names in the raw store, so anything else is refused before any I/O: ASCII
digits only (``\\d`` would accept other scripts' digits) and a bounded number.
"""

from __future__ import annotations

import re

from boeflow.errors import BoeflowError

BOE_ID_PATTERN = r"BOE-[A-Z]-[0-9]{4}-[0-9]{1,8}"
BOE_ID = re.compile(BOE_ID_PATTERN)
BOE_ID_BYTES = re.compile(BOE_ID_PATTERN.encode("ascii"))
# A BOE id inside running text (citations in summaries, notes).
BOE_ID_IN_TEXT = re.compile(rf"\b{BOE_ID_PATTERN}\b")
MAX_SHOWN = 80  # characters of a rejected identifier echoed in messages


class InvalidIdentifier(BoeflowError, ValueError):
    """A value that should be a BOE identifier is not one."""


def is_boe_id(value: object) -> bool:
    return isinstance(value, str) and BOE_ID.fullmatch(value) is not None


def shown(value: object) -> str:
    """A rejected value as it may appear in a message: repr'd and cut."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def require_boe_id(value: object, what: str = "BOE identifier") -> str:
    """``value`` if it is a BOE identifier, else InvalidIdentifier naming it."""
    if not is_boe_id(value):
        raise InvalidIdentifier(f"{what} {shown(value)} is not a BOE identifier "
                                f"(expected BOE-X-YYYY-N)")
    assert isinstance(value, str)
    return value
