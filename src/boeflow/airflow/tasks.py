"""What each DAG task does, as plain typed functions of JSON-serialisable values.

DAG files only wire these together; each function builds its own clients from the settings
(``BOEFLOW_*`` in the worker's environment) so a task can be rerun alone.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from boeflow.config import Settings, get_settings


class TaskFailed(RuntimeError):
    """The task must fail (and be retried by Airflow); the message says why."""


def resolve_day(requested: str | None, logical_date: str | None) -> str:
    """The BOE day a run works on: the one asked for in the trigger form, else the run's
    logical date. Returned as ISO ``YYYY-MM-DD``."""
    value = requested or logical_date
    if not value:
        raise TaskFailed("no date: pass `date` in the run parameters")
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise TaskFailed(f"not a date: {value!r} (expected YYYY-MM-DD)") from None


def fetch_day(day: str, settings: Settings | None = None,
              sections: list[str] | None = None) -> dict[str, Any]:
    """Fetch the sumario and the selected items of ``day`` into the raw store."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import RawStore, store_url

    settings = settings or get_settings()
    options = FetchOptions.from_settings(settings, sections=sections)
    with BoeClient(ClientConfig.from_settings(settings)) as client:
        summary = Fetcher(client, RawStore(store_url(settings)), options).fetch_day(
            date.fromisoformat(day))
    result = summary.as_dict()
    if summary.status == "error":
        raise TaskFailed(f"{day}: {summary.error}")
    return result


def index_day(day: str, settings: Settings | None = None) -> dict[str, Any]:
    """parse → chunk → embed → index every fetched document of ``day``."""
    from boeflow.pipeline import fetched_day_files, index_files

    settings = settings or get_settings()
    when = date.fromisoformat(day)
    with tempfile.TemporaryDirectory() as workdir:
        files = fetched_day_files(settings, when, when, Path(workdir))
        if not files:
            return {"day": day, "documents": 0, "note": "nothing fetched for this day"}
        report = index_files(files, settings)
    result = {"day": day, **report.as_dict()}
    if report.failed and len(report.failed) == report.documents:
        raise TaskFailed(f"{day}: every document failed: {report.failed}")
    return result


def enrich_day(day: str, settings: Settings | None = None) -> dict[str, Any]:
    """Summarise, translate (es→va) and review every fetched document of ``day`` (see
    ``boeflow.enrich.day.enrich_day``)."""
    from boeflow.enrich.day import enrich_day as run

    return run(day, settings or get_settings())
