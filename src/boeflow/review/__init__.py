"""Automatic review of summaries and translations (faithfulness, language, form, injection).

Every output gets a ``ReviewResult`` stored with it; any flagged check marks the item
``needs_attention`` with the reasons, for the human review step.
"""

from boeflow.review.checks import (
    check_faithfulness,
    check_language,
    check_prompt_injection,
    check_schema,
    check_summary_form,
    check_translation_form,
    detect_language,
    find_injections,
    review_summary,
    review_translation,
)
from boeflow.review.model import CheckResult, ReviewResult

__all__ = [
    "CheckResult",
    "ReviewResult",
    "check_faithfulness",
    "check_language",
    "check_prompt_injection",
    "check_schema",
    "check_summary_form",
    "check_translation_form",
    "detect_language",
    "find_injections",
    "review_summary",
    "review_translation",
]
