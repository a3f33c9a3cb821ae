"""What each step of the day returns: small typed models, one per step (fetched, planned,
indexed, enriched, reviewed, built, published, delivered).

The steps return these; the Airflow tasks turn them into JSON for XCom at the edge
(``to_json``) and back (``model_validate``) when a later task takes them, and the CLI's
``--json`` prints the same form. ``to_json`` keeps only the fields a step set, so a day
without a publication reports ``{"day": …, "documents": 0, "note": "no publication"}`` and
not a page of empty defaults: the JSON keys are the ones the steps have always reported.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from boeflow.boe.manifest import DaySummary
from boeflow.index.report import IndexReport


class StepResult(BaseModel):
    """A step's result. Unknown keys are refused: a misspelt field fails where it is set."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON form (XCom, ``--json``, the ``task_runs`` detail): the fields set."""
        return self.model_dump(mode="json", exclude_unset=True)


class FetchedDay(StepResult, DaySummary):
    """``fetch_day``: the day's sumario and items in the raw store."""


class Batch(StepResult):
    """``plan_batches``: one batch of the day's fetched items (one mapped task each)."""

    day: str
    batch: int
    ids: list[str]
    label: str


class IndexedBatch(StepResult, IndexReport):
    """``index_batch``: the batch's documents parsed, chunked, embedded and upserted (what
    the indexer did: ``IndexReport``'s figures)."""

    day: str
    batch: int = 0
    ids: list[str] = Field(default_factory=list)
    indexed: list[str] = Field(default_factory=list)
    pid: int = 0
    peak_rss_mib: float = 0.0


class IndexedDay(StepResult, IndexReport):
    """``index_day``: every batch of the day, summed."""

    day: str
    batches: int = 0
    note: str | None = None


class IndexOutcome(StepResult):
    """What the reduce step needs of a batch's index task."""

    indexed: list[str] | None = None
    failed: dict[str, str] | None = None


class EnrichedDocuments(StepResult):
    """The documents of a batch (or a day) summarised, translated and checked."""

    enriched: list[str] = Field(default_factory=list)
    needs_attention: list[str] = Field(default_factory=list)
    generated: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class EnrichedBatch(EnrichedDocuments):
    """``enrich_batch``: the batch's outcome and what it cost (docs/scale.md reads these);
    in the DAG, with its ``index`` task's outcome for the day's close (``index``)."""

    day: str
    batch: int = 0
    ids: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    smoke: bool = False
    pid: int = 0
    model_loads: dict[str, int] = Field(default_factory=dict)
    generate_calls: dict[str, int] = Field(default_factory=dict)
    peak_rss_mib: float = 0.0
    index: IndexOutcome | None = None


class Reviewed(StepResult):
    """``review_day``: the automatic review's outcome for the day."""

    day: str
    reviewed: int = 0
    needs_attention: list[str] = Field(default_factory=list)
    auto_checked: int = 0
    failed: list[str] = Field(default_factory=list)


class Closed(Reviewed):
    """``close_batches`` (the DAG's reduce step): the day's index and enrich outcome, its
    Valencian titles, and the review."""

    indexed: int = 0
    index_failed: dict[str, str] = Field(default_factory=dict)
    enrich_failed: dict[str, str] = Field(default_factory=dict)
    titles_va: dict[str, Any] = Field(default_factory=dict)


class EnrichedDay(StepResult):
    """``enrich_day``: every batch of the day, then its close."""

    day: str
    documents: int = 0
    enriched: list[str] = Field(default_factory=list)
    needs_attention: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    generated: list[str] = Field(default_factory=list)
    model_loads: dict[str, int] = Field(default_factory=dict)
    titles_va: dict[str, Any] = Field(default_factory=dict)
    reviewed: int = 0
    smoke: bool = False
    note: str | None = None
    # ``boeflow enrich --date D --to D2``: a day that failed, and why (the others go on)
    error: str | None = None


class Built(StepResult):
    """``build_digest_day``: the draft digest and whether a reviewer must see it."""

    day: str
    status: str
    draft_hash: str
    draft_paths: dict[str, str] = Field(default_factory=dict)
    items: int = 0
    needs_attention: list[str] = Field(default_factory=list)
    incidencias: int = 0
    already_published: bool = False
    published_version: int | None = None
    needs_review: bool = False
    review_body: str = ""


class Published(StepResult):
    """``publish_day``: a new version published, or why nothing was."""

    day: str
    published: bool
    reason: str | None = None
    version: int | None = None
    paths: dict[str, str] = Field(default_factory=dict)
    full_paths: dict[str, str] = Field(default_factory=dict)
    decision: str | None = None
    reviewer: str | None = None
    excluded: list[str] = Field(default_factory=list)
    edited: list[str] = Field(default_factory=list)
    draft_hash: str | None = None
    decision_id: int | None = None
    resumed: bool = False
    # set by ``boeflow digest approve``, which delivers what it published
    delivery: dict[str, Any] | None = None


class Delivered(StepResult):
    """``deliver_day``: the e-mails sent, skipped (already sent) and failed."""

    day: str
    version: int | None = None
    sent: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    note: str | None = None
