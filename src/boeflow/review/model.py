"""Results of the automatic review, stored with every summary and translation."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CheckResult(BaseModel):
    """One check: a score in [0, 1] and a flag (True = needs a human look)."""

    name: str
    score: float = Field(ge=0.0, le=1.0)
    flagged: bool
    reasons: list[str] = Field(default_factory=list)


class ReviewResult(BaseModel):
    checks: list[CheckResult]
    needs_attention: bool
    reasons: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, checks: list[CheckResult]) -> ReviewResult:
        reasons = [f"{c.name}: {r}" for c in checks if c.flagged for r in (c.reasons or ["?"])]
        return cls(checks=checks, needs_attention=any(c.flagged for c in checks), reasons=reasons)

    def check(self, name: str) -> CheckResult:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)
