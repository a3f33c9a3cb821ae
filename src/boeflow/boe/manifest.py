"""The per-day manifest of the raw store (``boe/YYYY/MM/DD/manifest.json``).

It records, for every selected item, where each representation came from, what was stored
(size, sha256) or why it was not (error naming the BOE id), plus the correction and
modification links read from the item's ``<analisis>`` for later stages.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from boeflow.core.types import ReferenceOut

Representation = Literal["xml", "html", "pdf"]
DayStatus = Literal["published", "no_publication", "error"]
MANIFEST_NAME = "manifest.json"


class FileRecord(BaseModel):
    """One fetched representation (an item's XML/HTML/PDF, a sumario, a sumario PDF)."""

    representation: str
    url: str | None = Field(description="canonical BOE URL (fetched from the base URL)")
    path: str | None = Field(None, description="store path relative to the store root; "
                             "set only when the file is stored")
    declared_size: int | None = Field(None, description="szBytes from the sumario")
    size: int | None = None
    sha256: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.path is not None and self.sha256 is not None


class ItemRecord(BaseModel):
    id: str
    diario: str
    section: str
    section_name: str
    department: str
    department_code: str | None = None
    epigrafe: str | None = None
    title: str
    control: str | None = None
    url_xml: str | None = None
    url_html: str | None = None
    url_pdf: str | None = None
    pdf_size: int | None = Field(None, description="szBytes declared in the sumario")
    first_page: int | None = None
    last_page: int | None = None
    files: dict[str, FileRecord] = Field(default_factory=dict)
    # From the item XML (<metadatos>, <analisis>), when the XML was fetched.
    rango: str | None = None
    references: list[ReferenceOut] = Field(default_factory=list)
    corrects: list[str] = Field(default_factory=list, description="ids this item corrects")
    modifies: list[str] = Field(default_factory=list,
                                description="ids this item modifies or repeals")
    empty_text: bool | None = Field(None, description="XML <texto> is empty (pre-1975): the "
                                    "PDF is the text source")

    @property
    def errors(self) -> list[str]:
        return [f.error for f in self.files.values() if f.error]


class SumarioRecord(FileRecord):
    source: str
    status_text: str | None = None
    sumario_ids: list[str] = Field(default_factory=list)
    pdfs: list[FileRecord] = Field(default_factory=list)


class DayCounts(BaseModel):
    items: int = 0
    files_stored: int = 0
    files_failed: int = 0


class DayManifest(BaseModel):
    date: date
    status: DayStatus
    error: str | None = None
    warnings: list[str] = Field(default_factory=list, description="anomalies of the day's "
                                "sumario that did not stop it (e.g. repeated identifiers)")
    complete: bool = Field(False, description="false while a run is still writing the day")
    sumario: SumarioRecord | None = None
    formats: list[str] = Field(default_factory=list)
    items: list[ItemRecord] = Field(default_factory=list)
    counts: DayCounts = Field(default_factory=DayCounts)
    updated_at: datetime | None = None

    def recount(self) -> None:
        files = [f for item in self.items for f in item.files.values()]
        self.counts = DayCounts(items=len(self.items),
                                files_stored=sum(1 for f in files if f.ok),
                                files_failed=sum(1 for f in files if f.error))

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(indent=1).encode("utf-8")


Outcome = Literal["fetched", "skipped", "failed"]


class DaySummary(BaseModel):
    """What one run did for one day: files fetched, skipped (already stored) or failed (the
    fetch step's result, ``boeflow.jobs.results.FetchedDay``, is this one)."""

    date: date
    status: Literal["published", "no_publication", "error"]
    sumario_ids: list[str] = Field(default_factory=list)
    items: int = 0
    fetched: int = 0
    skipped: int = 0
    failed: int = 0
    error: str | None = None

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json", include=set(DaySummary.model_fields))
