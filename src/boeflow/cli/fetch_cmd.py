"""``boeflow fetch``: BOE sumarios and item documents into the raw store."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer

from boeflow.cli.common import err_console, fail, parse_day, print_json, record_state

REPRESENTATIONS = ("xml", "html", "pdf")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def fetch(
    day: str = typer.Option(..., "--date", help="First (or only) day, YYYY-MM-DD."),
    to: str | None = typer.Option(None, "--to", help="Last day of a backfill, inclusive."),
    sections: str | None = typer.Option(
        None, "--sections", help="Comma-separated section codes (1,2A,2B,3,4,5A,5B,5C,T; "
        "2 and 5 select all their subsections). Default: all."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="BOE site (default: BOEFLOW_BOE_BASE_URL)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data directory; the raw store is DIR/raw "
        "(default: BOEFLOW_RAW_STORE_URL or BOEFLOW_DATA_DIR/raw)."),
    formats: str | None = typer.Option(
        None, "--formats", help="Representations per item: xml,html,pdf "
        "(default: BOEFLOW_BOE_FORMATS, xml). With pdf, the day's sumario PDF is kept too."),
    sumario_format: str | None = typer.Option(None, "--sumario-format",
                                              help="xml or json (API sumario)."),
    force: bool = typer.Option(False, "--force", help="Refetch files already stored."),
    as_json: bool = typer.Option(False, "--json", help="Print the per-day summary as JSON."),
) -> None:
    """Fetch the BOE of a day or a range of days: sumario, selected items, manifest.

    Reruns skip what is already stored intact; exits 1 if any file or day failed.
    """
    from boeflow.boe.fetch import Fetcher, FetchOptions, days_between
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.manifest import Representation
    from boeflow.boe.report import FetchProgress, summary_table
    from boeflow.boe.store import RawStore
    from boeflow.boe.store import store_url as raw_store_url
    from boeflow.core.settings import get_settings

    settings = get_settings()
    start = parse_day(day, "--date")
    end = parse_day(to, "--to") if to else start
    if end < start:
        fail(f"--to {end} is before --date {start}")
    chosen = _split(formats) or list(settings.boe_formats)
    unknown = [f for f in chosen if f not in REPRESENTATIONS]
    if unknown:
        fail(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(REPRESENTATIONS)}")
    sumario_kind = sumario_format or settings.boe_sumario_format
    if sumario_kind not in ("xml", "json"):
        fail(f"--sumario-format must be xml or json, not {sumario_kind!r}")
    store_url = raw_store_url(settings, data_dir)

    options = FetchOptions.from_settings(
        settings, sections=_split(sections) or None,
        formats=[cast(Representation, f) for f in dict.fromkeys(chosen)],
        sumario_format="json" if sumario_kind == "json" else "xml", force=force)
    config = ClientConfig.from_settings(settings, base_url=base_url)
    days = list(days_between(start, end))
    with BoeClient(config) as client, FetchProgress(err_console, len(days)) as progress:
        fetcher = Fetcher(client, RawStore(store_url), options, progress)
        summaries = [fetcher.fetch_day(d) for d in days]
    if data_dir is None:  # the configured store: the day's state goes with it
        from boeflow.jobs.fetch import record_fetched

        for summary in summaries:
            record_state(record_fetched, summary.date.isoformat(), settings, summary)
    if as_json:
        print_json({"store": store_url, "days": [s.as_dict() for s in summaries]})
    else:
        err_console.print(summary_table(summaries))
        for s in summaries:
            if s.error:
                err_console.print(f"{s.date}: {s.error}", style="red", markup=False,
                                  highlight=False, soft_wrap=True)
    failed = sum(s.failed for s in summaries)
    errors = [s for s in summaries if s.status == "error"]
    if failed or errors:
        fail(f"{failed} files failed and {len(errors)} of {len(summaries)} days failed; the "
             f"manifests under {store_url} "
             "name each BOE id and its error")


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
