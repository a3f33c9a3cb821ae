"""``boeflow db upgrade`` and ``boeflow status --date D [--json]``: the day's state in
PostgreSQL."""

from __future__ import annotations

import typer
from rich.console import Console

from boeflow.cli.common import fail, parse_day, print_json
from boeflow.core.settings import get_settings
from boeflow.digest.render import local_time

db_app = typer.Typer(help="boeflow's PostgreSQL schema.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def upgrade() -> None:
    """Apply the pending sql/NNN_*.sql migrations (idempotent: a second run applies none)."""
    from boeflow.state.db import StateError, connect
    from boeflow.state.db import upgrade as run

    settings = get_settings()
    try:
        with connect(settings) as conn:
            applied = run(conn, settings.sql_dir)
    except StateError as exc:
        fail(str(exc))
    out.print("applied: " + ", ".join(applied) if applied else "schema up to date")


def status(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """What is done and what failed on a day: every task's outcome, documents, review
    decisions, published digests and deliveries."""
    from boeflow.state.db import StateError, state
    from boeflow.state.records import day_status

    when = parse_day(day, "--date")
    try:
        with state(get_settings()) as conn:
            result = day_status(conn, when)
    except StateError as exc:
        fail(str(exc))
    if result is None:
        fail(f"nothing recorded for {when}")
    if as_json:
        print_json(result)
        return
    d = result["day"]
    out.print(f"[bold]{when}[/] {d['status']} · digest {d['digest_status'] or '—'} · "
              f"{d['items']} items, {d['fetched']} fetched, {d['indexed']} indexed, "
              f"{d['enriched']} summarised, {d['needs_attention']} need attention, "
              f"{d['failed']} failed")
    for t in result["tasks"]:
        mark = {"success": "✓", "failed": "✗", "skipped": "–", "running": "…"}.get(t["status"],
                                                                               "?")
        out.print(f"  {mark} {t['task']:<13} {t['status']:<8}"
                  + (f" {t['error']}" if t["error"] else ""), markup=False)
    failures = result["failures"]
    if failures:
        out.print(f"  {len(failures)} documents failed (first 5):")
        for f in failures[:5]:
            out.print(f"    {f['boe_id']} [{f['stage']}] {f['error']}", markup=False)
    for dec in result["decisions"]:
        out.print(f"  review: {dec['decision']} by {dec['reviewer'] or '—'} at "
                  f"{local_time(dec['decided_at'])}", markup=False)
    for dig in result["digests"]:
        out.print(f"  digest v{dig['version']} published {local_time(dig['published_at'])}"
                  f": {', '.join(dig['paths'].values())}", markup=False)
    for dl in result["deliveries"]:
        out.print(f"  {dl['channel']}: {dl['status']} ({dl['attempts']} attempts)"
                  + (f" {dl['error']}" if dl["error"] else ""), markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("status")(status)
