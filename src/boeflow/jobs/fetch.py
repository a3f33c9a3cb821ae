"""The fetch step: the day's sumario and every item's files into the raw store."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from boeflow.core.settings import Settings
from boeflow.jobs.common import TaskFailed, owns_resources, raw_store, recorded, resolve_settings
from boeflow.jobs.results import FetchedDay

if TYPE_CHECKING:
    from boeflow.boe.manifest import DaySummary


@owns_resources
def fetch_day(day: str, settings: Settings | None = None, sections: list[str] | None = None,
              run_id: str | None = None, *, force: bool = False,
              max_items: int | None = None) -> FetchedDay:
    """Fetch the sumario and the selected items of ``day`` (``sections``, at most
    ``max_items`` of them in the sumario's order; ``force``: download again what is stored)
    into the raw store. A day without a BOE is not an error: it is recorded as
    ``no_publication``."""
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_fetch

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    with recorded(settings, day, "fetch", run_id) as detail:
        store = raw_store(settings)
        options = FetchOptions.from_settings(settings, sections=sections or None, force=force,
                                             limit=max_items)
        with BoeClient(ClientConfig.from_settings(settings)) as client:
            summary = Fetcher(client, store, options).fetch_day(when)
        result = FetchedDay.model_validate(summary.as_dict())
        detail.update(result.to_json())
        with state(settings) as conn:
            record_fetch(conn, when, load_manifest(store, when), detail)
        if summary.status == "error":
            raise TaskFailed(f"{day}: {summary.error}")
    return result


def record_fetched(day: str, settings: Settings, summary: DaySummary) -> None:
    """What the fetch task records (documents, the day, the task's outcome), for a day
    fetched by ``boeflow fetch``."""
    from boeflow.boe.store import load_manifest
    from boeflow.state.db import state
    from boeflow.state.records import record_fetch, record_task

    when = date.fromisoformat(day)
    detail = summary.as_dict()
    with state(settings) as conn:
        record_fetch(conn, when, load_manifest(raw_store(settings), when), detail)
        record_task(conn, when, "fetch", "failed" if summary.status == "error"
                    else "success", detail=detail, error=summary.error)
