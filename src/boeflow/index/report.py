"""What indexing did, summed over documents, batches and days (light: the step results and
the CLI read it without loading Elasticsearch's client)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_serializer


class IndexReport(BaseModel):
    """What indexing did; the index step's results (``boeflow.jobs.results``) extend it."""

    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    chunks_unchanged: int = 0
    skipped_unchanged: int = 0
    deleted_stale: int = 0
    enrichment_stale: int = 0
    failed: dict[str, str] = Field(default_factory=dict)
    embed_seconds: float = 0.0  # in embedder.embed
    bulk_seconds: float = 0.0  # in the chunk and record bulk requests
    bulk_actions: int = 0  # chunk writes, stale deletes and record writes sent

    @field_serializer("embed_seconds", "bulk_seconds")
    def _milliseconds(self, seconds: float) -> float:
        return round(seconds, 3)

    def add(self, other: IndexReport) -> None:
        """Add the figures of another report (a batch's, a day's) to this one."""
        for name in IndexReport.model_fields:
            if name == "failed":
                self.failed.update(other.failed)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(include=set(IndexReport.model_fields))
