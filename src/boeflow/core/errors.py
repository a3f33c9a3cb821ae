"""The root of boeflow's own exceptions.

Every failure boeflow expects (bad input, an unreachable service, a full disk, a bound hit)
is raised as a subclass of :class:`BoeflowError` whose message is one line for the user,
naming the BOE id, file or setting concerned. The CLI's error boundary prints that line;
the fuzz tests assert that hostile inputs raise nothing else.
"""

from __future__ import annotations


class BoeflowError(Exception):
    """An expected failure; ``str(exc)`` is the one line shown to the user."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), cut to
    ``limit`` characters: what a log line, a task's error or a per-item failure shows."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
