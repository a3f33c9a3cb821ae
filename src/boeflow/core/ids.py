"""The BOE identifier grammar: the one definition every stage uses.

``BOE-<letter>-<year>-<number>``: ``BOE-A-2024-22928`` (dispositions), ``BOE-B-…``
(announcements), ``BOE-S-2024-268`` (a day's sumario). Identifiers come from the network
and become file names in the raw store, so anything else is refused before any I/O: ASCII
digits only (``\\d`` would accept other scripts' digits) and a bounded number.
"""

from __future__ import annotations

import re

from boeflow.core.errors import BoeflowError

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


# Dashes a reviewer's keyboard, word processor or browser may put in an id: every Unicode
# "dash punctuation" character and the minus signs.
_DASHES = {ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b"
           "\ufe58\ufe63\uff0d\u00ad"}
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def normalise_boe_id(value: object, what: str = "BOE identifier") -> str:
    """A BOE id typed by a person, in canonical form: compatibility forms folded (NFKC:
    full-width letters and digits), Unicode hyphens and minus signs made ``-``, surrounding
    blanks (non-breaking ones too) removed, upper case. Anything that is then not exactly
    ``BOE-X-YYYY-N`` is refused (InvalidIdentifier naming it): nothing is guessed."""
    import unicodedata

    if not isinstance(value, str):
        raise InvalidIdentifier(f"{what} {shown(value)} is not text")
    text = unicodedata.normalize("NFKC", value).translate(_DASHES)
    text = text.strip().strip(_INVISIBLE).strip().upper()
    if not is_boe_id(text):
        raise InvalidIdentifier(f"{what} {shown(value)} is not a BOE identifier "
                                f"(expected BOE-X-YYYY-N)")
    return text
