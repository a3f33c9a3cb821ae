"""What every step of the day shares: the day's settings, its raw store, the resources a
step owns (``owns_resources``), the recording of a step's outcome in PostgreSQL
(``task_runs``) and the one-line failure."""

from __future__ import annotations

import functools
import inspect
import logging
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings, get_settings
from boeflow.core.site import BOE_TIMEZONE as BOE_TIMEZONE

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


class TaskFailed(RuntimeError):
    """The task must fail (and be retried by Airflow); the message says why in one line."""


@contextmanager
def recorded(settings: Settings, day: str, task: str,
              run_id: str | None) -> Iterator[dict[str, Any]]:
    """Record the task's outcome in PostgreSQL: ``running``, then ``success`` with the
    returned detail, or ``failed`` with the error line."""
    from boeflow.state.db import StateError, state
    from boeflow.state.records import record_task

    when = date.fromisoformat(day)
    detail: dict[str, Any] = {}
    try:
        with state(settings) as conn:
            record_task(conn, when, task, "running", run_id=run_id)
    except StateError as exc:
        raise TaskFailed(str(exc)) from None
    try:
        yield detail
    except Exception as exc:
        message = one_line(exc, 500)
        try:
            with state(settings) as conn:
                record_task(conn, when, task, "failed", detail=detail, error=message,
                            run_id=run_id)
        except StateError:  # PostgreSQL is gone: keep the first error's line
            raise TaskFailed(f"{task} {day}: {message} (this failure could not be recorded "
                             "in PostgreSQL either)") from None
        if isinstance(exc, TaskFailed):
            raise
        raise TaskFailed(f"{task} {day}: {message}") from exc
    with state(settings) as conn:
        record_task(conn, when, task, detail.pop("_status", "success"), detail=detail,
                    run_id=run_id)


def owns_resources(step: Callable[_P, _R]) -> Callable[_P, _R]:
    """A step owns its task's resources: one PostgreSQL connection and one Elasticsearch
    client for the whole step, opened on first use, shared by everything it calls (a step
    calling another step included) and closed when it returns. The step's ``settings``
    argument (or the process's settings) says where they are."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from boeflow.index.client import es_session
        from boeflow.state.db import pg_session

        given = signature.bind_partial(*args, **kwargs).arguments.get("settings")
        settings = resolve_settings(given if isinstance(given, Settings) else None)
        with pg_session(settings), es_session(settings):
            return step(*args, **kwargs)

    return run


def resolve_settings(settings: Settings | None) -> Settings:
    return settings or get_settings()


def resolve_day(requested: str | None, logical_date: str | None) -> str:
    """The BOE day a run works on: the one asked for in the trigger form, else the run's
    logical date (or, for a manual run without one, when it was triggered), as a day in
    Madrid. Returned as ISO ``YYYY-MM-DD``."""
    from zoneinfo import ZoneInfo

    value = requested or logical_date
    if not value:
        raise TaskFailed("no date: pass `date` in the run parameters")
    try:
        if len(value) <= 10:
            return date.fromisoformat(value).isoformat()
        when = datetime.fromisoformat(value)
    except ValueError:
        raise TaskFailed(f"not a date: {value!r} (expected YYYY-MM-DD)") from None
    if when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(BOE_TIMEZONE))
    return when.date().isoformat()


def raw_store(settings: Settings) -> Any:
    from boeflow.boe.store import RawStore, store_url

    return RawStore(store_url(settings))


def is_published(settings: Settings, day: str) -> bool:
    """Whether the BOE published anything that day (per the fetched manifest)."""
    from boeflow.boe.store import load_manifest

    manifest = load_manifest(raw_store(settings), date.fromisoformat(day))
    return manifest is not None and manifest.status == "published"


LANGUAGES = ("es", "va")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB; Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


