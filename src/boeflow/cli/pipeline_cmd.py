"""``boeflow enrich --date D``: the daily DAG's enrich step from the command line."""

from __future__ import annotations

from datetime import timedelta

import typer

from boeflow.cli.common import err_console, parse_day, print_json


def enrich(
    day: str = typer.Option(..., "--date", help="A fetched and indexed day, YYYY-MM-DD."),
    to: str | None = typer.Option(None, "--to", help="Last day of a range."),
    as_json: bool = typer.Option(False, "--json", help="Print the per-day result as JSON."),
) -> None:
    """Summarise, translate (es→va) and review every document of fetched days, and store
    the outputs and review flags in boe-documents. Cached: reruns generate nothing."""
    from boeflow.daily import TaskFailed, enrich_day

    start = parse_day(day, "--date")
    end = parse_day(to, "--to") if to else start
    results = []
    current = start
    while current <= end:
        try:
            results.append(enrich_day(current.isoformat()))
        except TaskFailed as exc:
            results.append({"day": current.isoformat(), "error": str(exc)})
        current += timedelta(days=1)
    if as_json:
        print_json(results)
    else:
        for result in results:
            if "error" in result:
                err_console.print(f"{result['day']}: {result['error']}", markup=False)
                continue
            err_console.print(
                f"{result['day']}: {len(result['enriched'])} enriched, "
                f"{len(result['needs_attention'])} need attention, "
                f"{len(result['failed'])} failed", highlight=False)
    if any("error" in r or r.get("failed") for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("enrich")(enrich)
