"""The smallest generation budgets the tests use with the smoke models: one definition.

Structured summaries need room for every key of the schema (``_check_output_budget`` refuses
less: 154 tokens for the smoke summarizer), so the summary budgets stay just above that; the
map notes and translations are free text and stay short to keep CPU runs quick."""

from __future__ import annotations

SMOKE_GENERATION: dict[str, int] = {
    "max_new_tokens": 200,
    "summary_short_max_new_tokens": 160,
    "summary_map_max_new_tokens": 24,
    "summary_max_repairs": 0,
    "translate_max_new_tokens": 32,
}


def generation_env(**overrides: int) -> dict[str, str]:
    """:data:`SMOKE_GENERATION` as ``BOEFLOW_*`` environment variables."""
    values = {**SMOKE_GENERATION, **overrides}
    return {f"BOEFLOW_{name.upper()}": str(value) for name, value in values.items()}
