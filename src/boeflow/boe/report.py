"""Progress bar (items/s, ETA) and the per-day summary table of a fetch run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from boeflow.boe.manifest import DaySummary


class ItemsPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} items/s" if speed else "- items/s", style="progress.data.speed")


class FetchProgress:
    """A rich progress bar over all items of a backfill; the total grows as each day's
    sumario reveals how many items it has. Implements ``boeflow.boe.fetch.ProgressHook``."""

    def __init__(self, console: Console, days: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            ItemsPerSecondColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False)
        self._days = days
        self._day_index = 0
        self._task = self._progress.add_task("fetch", total=0)

    def __enter__(self) -> FetchProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def start_day(self, day: date) -> None:
        self._day_index += 1
        self._progress.update(self._task,
                              description=f"{day.isoformat()} (day {self._day_index}/{self._days})")

    def add_items(self, count: int) -> None:
        total = self._progress.tasks[0].total or 0
        self._progress.update(self._task, total=total + count)

    def item_done(self) -> None:
        self._progress.advance(self._task)


def summary_table(summaries: Sequence[DaySummary]) -> Table:
    no_publication = sum(1 for s in summaries if s.status == "no_publication")
    errors = sum(1 for s in summaries if s.status == "error")
    table = Table(title="BOE fetch: files per day",
                  caption=f"{len(summaries)} days: {no_publication} without publication, "
                  f"{errors} failed; the manifests name each failed BOE id")
    table.add_column("date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("sumario", no_wrap=True)
    for column in ("items", "fetched", "skipped", "failed"):
        table.add_column(column, justify="right")
    for s in summaries:
        status = s.status.replace("_", "-")
        table.add_row(s.date.isoformat(), f"[red]{status}[/]" if s.error else status,
                      ", ".join(s.sumario_ids) or "-", str(s.items), str(s.fetched),
                      str(s.skipped), f"[red]{s.failed}[/]" if s.failed else "0")
    table.add_section()
    table.add_row("total", "", "", str(sum(s.items for s in summaries)),
                  str(sum(s.fetched for s in summaries)), str(sum(s.skipped for s in summaries)),
                  str(sum(s.failed for s in summaries)))
    return table
