"""Results of the automatic review, stored with every summary and translation."""

from __future__ import annotations

from pydantic import BaseModel, Field

from boeflow.review.anchors import AnchoredFact


class CheckResult(BaseModel):
    """One check: a score in [0, 1] and a flag (True = needs a human look)."""

    name: str
    score: float = Field(ge=0.0, le=1.0)
    flagged: bool
    reasons: list[str] = Field(default_factory=list)
    facts: list[AnchoredFact] = Field(
        default_factory=list, description="the facts checked, each with its source anchor")


class ReviewResult(BaseModel):
    checks: list[CheckResult]
    needs_attention: bool
    reasons: list[str] = Field(default_factory=list)
    facts: list[AnchoredFact] = Field(
        default_factory=list,
        description="every fact of the output with its support in the source: "
                    "{kind, value, supported, source: {path, start, end, quote}}")

    @classmethod
    def of(cls, checks: list[CheckResult]) -> ReviewResult:
        reasons = [f"{c.name}: {r}" for c in checks if c.flagged for r in (c.reasons or ["?"])]
        return cls(checks=checks, needs_attention=any(c.flagged for c in checks), reasons=reasons,
                   facts=[f for c in checks for f in c.facts])

    def flagged_facts(self) -> list[AnchoredFact]:
        return [f for f in self.facts if not f.supported]

    def check(self, name: str) -> CheckResult:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)
