"""``boeflow digest build|show|publish|schema``: the daily digest from the command line."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

from boeflow.cli.common import fail, parse_day, print_json
from boeflow.config import get_settings
from boeflow.digest.render import local_time

app = typer.Typer(help="The reviewed daily digest (Markdown, HTML, JSON).",
                  no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


@app.command("build")
def build(
    day: str = typer.Option(..., "--date", help="A fetched day, YYYY-MM-DD."),
    fmt: str = typer.Option("md", "--format", help="md, html or json."),
    out_path: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
) -> None:
    """Build the draft digest of a day (unreviewed, watermarked "BORRADOR — pendiente de
    revisión"). Reads the raw store, boe-documents and the recorded failures."""
    from boeflow.boe.store import RawStore, store_url
    from boeflow.digest.build import build_draft, draft_hash
    from boeflow.digest.collect import collect, hybrid_query
    from boeflow.digest.render import FORMATS, render
    from boeflow.digest.watchlists import WatchlistError, load_watchlists, run_watchlists
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import StateError, connect

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose md, html or json")
    when = parse_day(day, "--date")
    settings = get_settings()
    store = RawStore(store_url(settings))
    names = names_for(settings)
    try:
        watchlists = load_watchlists(settings.digest_watchlists_file)
        conn = connect(settings)
    except (WatchlistError, StateError) as exc:
        fail(str(exc))
    with get_client(settings) as client, conn:
        inputs = collect(when, settings, store, client, names, conn)
        if inputs.manifest is None:
            fail(f"{when} has not been fetched: run `boeflow fetch --date {when}` first")
        draft = build_draft(inputs, smoke=settings.is_smoke)
        if watchlists and draft.status == "draft":
            query = hybrid_query(settings, client, names) if any(w.query for w in watchlists) \
                else None
            draft.watchlists = run_watchlists(draft, watchlists, inputs.records, query)
            draft.draft_hash = draft_hash(draft)
    text = render(draft, fmt)
    if out_path is None:
        out.file.write(text)
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
        out.print(f"draft digest of {when} written to {out_path} ({draft.header.items} items, "
                  f"{len(draft.incidencias)} incidencias)")


@app.command("show")
def show(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Where the day's digest stands: published (version, reviewer, files) or pending
    (awaiting review, rejected, timed out)."""
    from boeflow.boe.store import RawStore, store_url
    from boeflow.state.db import StateError, state
    from boeflow.state.records import day_status

    when = parse_day(day, "--date")
    settings = get_settings()
    try:
        with state(settings) as conn:
            status = day_status(conn, when)
    except StateError as exc:
        fail(str(exc))
    if status is None:
        fail(f"nothing recorded for {when}: run the daily DAG or `boeflow fetch` first")
    store = RawStore(store_url(settings))
    digests = status["digests"]
    decisions = status["decisions"]
    latest = digests[-1] if digests else None
    summary = {
        "date": when.isoformat(),
        "state": ("no_publication" if status["day"]["status"] == "no_publication" else
                  "published" if latest else "pending"),
        "digest_status": status["day"]["digest_status"],
        "version": latest["version"] if latest else None,
        "published_at": latest["published_at"] if latest else None,
        "files": {k: store.path(v) for k, v in (latest["paths"] if latest else {}).items()},
        "decisions": decisions,
    }
    if as_json:
        print_json(summary)
        return
    state_line = {"published": f"publicado (versión {summary['version']})",
                  "no_publication": "sin BOE ese día",
                  "pending": f"pendiente ({summary['digest_status'] or 'sin revisar'})"}
    out.print(f"{when}: {state_line[summary['state']]}")
    for decision in decisions:
        out.print(f"  revisión {local_time(decision['decided_at'])}: {decision['decision']}"
                  f" por {decision['reviewer'] or '—'}; excluidos: "
                  f"{', '.join(decision['excluded']) or 'ninguno'}; corregidos: "
                  f"{', '.join(decision['edits']) or 'ninguno'}"
                  + (f"; nota: {decision['note']}" if decision["note"] else ""), markup=False)
    for fmt, path in summary["files"].items():
        out.print(f"  {fmt}: {path}", markup=False)


@app.command("publish")
def publish(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    without_review: bool = typer.Option(
        False, "--without-review", help="Publish the current draft with no human approval "
        "(recorded as such, with your user name)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Publish the day's draft digest: only after its approval in Airflow (the approved
    decision on this very draft), or with --without-review."""
    from boeflow.boe.store import RawStore, store_url
    from boeflow.daily import TaskFailed, publish_day
    from boeflow.digest.build import ReviewInput
    from boeflow.digest.publish import read_digest
    from boeflow.state.db import StateError, state
    from boeflow.state.records import latest_decision

    when = parse_day(day, "--date")
    settings = get_settings()
    draft = read_digest(RawStore(store_url(settings)), when, draft=True)
    if draft is None:
        fail(f"no draft digest for {when}: run the daily DAG (build_digest) first")
    try:
        with state(settings) as conn:
            decision = latest_decision(conn, when)
    except StateError as exc:
        fail(str(exc))
    if without_review:
        review = ReviewInput(decision="without_review", reviewer=getpass.getuser(),
                             decided_at=datetime.now().astimezone(),
                             note="publicado sin revisión humana (--without-review)")
    elif decision and decision["decision"] == "approved" \
            and decision["draft_hash"] == draft.draft_hash:
        review = ReviewInput(
            decision="approved", reviewer=decision["reviewer"],
            decided_at=decision["decided_at"], note=decision["note"],
            excluded=list(decision["excluded"]),
            edits={k: v["resumen"] for k, v in dict(decision["edits"]).items()})
    else:
        fail(f"the draft of {when} is not approved: approve it in Airflow (Required Actions) "
             "or pass --without-review")
    try:
        result = publish_day(when.isoformat(), settings, review)
    except TaskFailed as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
    elif result.get("published"):
        out.print(f"{when}: published version {result['version']}", markup=False)
        for fmt, path in result["full_paths"].items():
            out.print(f"  {fmt}: {path}", markup=False)
    else:
        out.print(f"{when}: nothing published ({result.get('reason')})", markup=False)


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of digest.json (docs/digest.schema.json)."""
    from boeflow.digest.model import Digest

    out.file.write(json.dumps(Digest.model_json_schema(), ensure_ascii=False, indent=1) + "\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="digest")
