"""Bounds on what one input may cost the parsers (settings ``BOEFLOW_PARSE_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from boeflow.core.settings import Settings, get_settings


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int
    max_depth: int
    max_table_cells: int
    max_span: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ParseLimits:
        settings = settings or get_settings()
        return cls(max_bytes=settings.parse_max_bytes, max_depth=settings.parse_max_depth,
                   max_table_cells=settings.parse_max_table_cells,
                   max_span=settings.parse_max_span)
