"""The one exception of the parse stage: a document that cannot be parsed, and why."""

from __future__ import annotations

from boeflow.core.errors import BoeflowError


class ParseError(BoeflowError):
    """``document`` is the BOE identifier when it could be read, else the file path."""

    def __init__(self, document: str, reason: str) -> None:
        super().__init__(f"{document}: {reason}")
        self.document = document
        self.reason = reason
