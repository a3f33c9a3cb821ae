"""``boeflow digest build|show|publish|schema``: the daily digest from the command line."""

from __future__ import annotations

import getpass
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from boeflow.cli.common import fail, parse_day, print_json
from boeflow.core.settings import get_settings
from boeflow.digest.render import local_time

if TYPE_CHECKING:
    from boeflow.jobs.results import Delivered

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
    revisión"): the same step as the DAG's build_digest task, so the draft is stored under
    digests/…/draft/ and the day's state recorded in PostgreSQL (`digest show` gives its
    draft_hash, `digest approve` publishes it). Reads the raw store, boe-documents and the
    recorded failures."""
    from boeflow.boe.store import RawStore, load_manifest, store_url
    from boeflow.digest.publish import read_digest
    from boeflow.digest.render import FORMATS, render
    from boeflow.digest.watchlists import WatchlistError, load_watchlists
    from boeflow.jobs.common import TaskFailed
    from boeflow.jobs.digest import build_digest_day

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose md, html or json")
    when = parse_day(day, "--date")
    settings = get_settings()
    try:  # a bad watchlist file is a setup error: said first, whatever the day
        load_watchlists(settings.digest_watchlists_file)
    except WatchlistError as exc:
        fail(str(exc))
    store = RawStore(store_url(settings))
    if load_manifest(store, when) is None:
        fail(f"{when} has not been fetched: run `boeflow fetch --date {when}` first")
    try:
        built = build_digest_day(when.isoformat(), settings)
    except TaskFailed as exc:
        fail(str(exc))
    draft = read_digest(store, when, draft=True)
    if draft is None:
        fail(f"the draft of {when} was not written")
    text = render(draft, fmt)
    if out_path is None:
        out.file.write(text)
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
        out.print(f"draft digest of {when} written to {out_path} ({draft.header.items} items, "
                  f"{len(draft.incidencias)} incidencias); draft_hash {built.draft_hash}",
                  markup=False)


def day_summary(when: date) -> dict[str, Any]:
    """What ``digest show --json`` prints (docs/digest.md): the current draft's hash, the
    day's digest status, the published version and what it excludes and corrects."""
    from boeflow.boe.store import RawStore, store_url
    from boeflow.digest.publish import read_digest, read_version
    from boeflow.state.db import StateError, state
    from boeflow.state.records import day_status, latest_digest, publishing_digest

    settings = get_settings()
    try:
        with state(settings) as conn:
            status = day_status(conn, when)
            latest = latest_digest(conn, when)
            pending = publishing_digest(conn, when)
    except StateError as exc:
        fail(str(exc))
    if status is None:
        fail(f"nothing recorded for {when}: run the daily DAG or `boeflow fetch --date {when}` "
             "first")
    store = RawStore(store_url(settings))
    draft = read_digest(store, when, draft=True)
    published = read_version(store, when, int(latest["version"])) if latest else None
    decision = published.decision if published else None
    day_state = status["day"]["status"]
    return {
        "date": when.isoformat(),
        "draft_hash": draft.draft_hash if draft and draft.status == "draft" else None,
        "status": ("no_publication" if day_state == "no_publication" else
                   status["day"]["digest_status"] or ("published" if latest else "pending")),
        "published_version": latest["version"] if latest else None,
        "published_draft_hash": latest["draft_hash"] if latest else None,
        "published_at": latest["published_at"] if latest else None,
        "excluded": [e.boe_id for e in published.excluded] if published else [],
        "edited": list(decision.edited) if decision else [],
        "reviewer": decision.reviewer if decision else None,
        "decision": decision.decision if decision else None,
        "publishing": ({"version": pending["version"], "error": pending["error"]}
                       if pending else None),
        "files": {k: store.path(v) for k, v in (latest["paths"] if latest else {}).items()},
        "decisions": status["decisions"],
    }


@app.command("show")
def show(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Where the day's digest stands: the draft to review (its draft_hash), the published
    version (reviewer, exclusions, corrections, files), a publication in progress or failed."""
    when = parse_day(day, "--date")
    summary = day_summary(when)
    if as_json:
        print_json(summary)
        return
    version = summary["published_version"]
    if summary["status"] == "no_publication":
        line = "sin BOE ese día"
    elif version:
        line = f"publicado (versión {version})" + (
            f"; {summary['status']}" if summary["status"] != "published" else "")
    else:
        line = f"pendiente ({summary['status'] or 'sin revisar'})"
    out.print(f"{when}: {line}", markup=False)
    if summary["draft_hash"]:
        out.print(f"  borrador: {summary['draft_hash']}", markup=False)
    if version:
        when_decided = (f" el {local_time(summary['published_at'])}"
                        if summary["published_at"] else "")
        out.print(f"  revisión{when_decided}: {summary['decision']} por "
                  f"{summary['reviewer'] or '—'}; "
                  f"excluidos: {', '.join(summary['excluded']) or 'ninguno'}; corregidos: "
                  f"{', '.join(summary['edited']) or 'ninguno'}", markup=False)
    if summary["publishing"]:
        pending = summary["publishing"]
        out.print(f"  publicando la versión {pending['version']}"
                  + (f": {pending['error']}" if pending["error"] else ""), markup=False)
    for fmt, path in summary["files"].items():
        out.print(f"  {fmt}: {path}", markup=False)


def _corrections(values: list[str]) -> dict[str, str]:
    edits: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            fail(f"--correct {value[:80]!r}: expected ID=TEXT or ID:va=TEXT")
        if key.strip() in edits and edits[key.strip()] != text:
            fail(f"--correct: {key.strip()} is corrected twice with different texts")
        edits[key.strip()] = text
    return edits


def _deliver(when: date) -> Delivered | None:
    """After a publication: e-mail it to the configured recipients (the DAG's deliver task,
    ``boeflow.jobs.deliver.deliver_day``, through the same SMTP Connection
    ``BOEFLOW_DIGEST_SMTP_CONN_ID``); None when nobody is configured to receive it."""
    from boeflow.digest.watchlists import load_watchlists
    from boeflow.jobs.deliver import deliver_day

    settings = get_settings()
    watchlists = load_watchlists(settings.digest_watchlists_file)
    if not settings.digest_recipients and not any(w.recipients for w in watchlists):
        return None
    from boeflow.digest.mail import env_connection, smtp_send

    connection = env_connection(settings.digest_smtp_conn_id)
    if connection is not None:  # defined in the environment: no need to load Airflow
        send = smtp_send(connection, settings.digest_mail_from)
    else:  # the Connection lives in Airflow's database
        from boeflow.airflow.notify import smtp_sender

        send = smtp_sender(settings.digest_smtp_conn_id, settings.digest_mail_from, {})
    return deliver_day(when.isoformat(), settings, send)


def _publish(when: date, answer: dict[str, Any] | None, as_json: bool) -> None:
    from boeflow.jobs.common import TaskFailed
    from boeflow.jobs.publish import publish_day

    settings = get_settings()
    try:
        result = publish_day(when.isoformat(), settings, answer)
        if result.reason == "not_reviewed":
            fail(f"the draft of {when} is not approved: `boeflow digest approve --date {when} "
                 "--draft-hash HASH`, approve it in Airflow, or pass --without-review")
        delivered = _deliver(when) if result.published or \
            result.reason == "already_published" else None
    except TaskFailed as exc:
        fail(str(exc))
    result.delivery = delivered.to_json() if delivered else None
    if as_json:
        print_json(result.to_json())
        return
    if result.published:
        out.print(f"{when}: published version {result.version}", markup=False)
        for fmt, path in result.full_paths.items():
            out.print(f"  {fmt}: {path}", markup=False)
    else:
        out.print(f"{when}: nothing new published ({result.reason}"
                  + (f", version {result.version}" if result.version else "") + ")",
                  markup=False)
    if delivered and delivered.sent:
        out.print(f"  sent: {len(delivered.sent)} e-mails", markup=False)


@app.command("approve")
def approve(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    draft_hash: str = typer.Option(..., "--draft-hash", help="The draft you reviewed "
                                   "(`boeflow digest show --date D --json`: draft_hash)."),
    exclude: list[str] = typer.Option([], "--exclude", help="A BOE id not to publish "
                                      "(repeatable)."),
    correct: list[str] = typer.Option([], "--correct", help="ID=TEXT or ID:va=TEXT: the "
                                      "corrected resumen (repeatable); re-reviewed "
                                      "automatically."),
    note: str | None = typer.Option(None, "--note", help="The general note, shown in the "
                                    "published digest."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Your name (default: your "
                                        "user name)."),
    reject: bool = typer.Option(False, "--reject", help="Reject the draft: nothing is "
                                "published, the day stays pending."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Approve (or --reject) the day's draft, exactly as the Airflow approval form does:
    the decision is validated against the draft it names by hash, corrections are
    re-reviewed, then the digest is published and e-mailed once. A stale hash, an id that
    is not an item of the draft or an empty correction is refused (exit 1, one line).
    Rerunning the same command after a crash finishes the same version."""
    when = parse_day(day, "--date")
    answer = {"decision": "rejected" if reject else "approved", "draft_hash": draft_hash,
              "excluir": list(exclude), "correcciones": _corrections(list(correct)),
              "nota": note, "reviewer": reviewer or getpass.getuser(),
              "decided_at": datetime.now().astimezone()}
    _publish(when, answer, as_json)


@app.command("publish")
def publish(
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD."),
    without_review: bool = typer.Option(
        False, "--without-review", help="Publish the current draft with no human approval "
        "(recorded as such, with your user name)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Finish the day's publication (one interrupted by a crash or a failure, with its
    recorded decision), or with --without-review publish the current draft with no human
    approval. Publishing an approved, unchanged day again publishes nothing."""
    from boeflow.boe.store import RawStore, store_url
    from boeflow.digest.publish import read_digest

    when = parse_day(day, "--date")
    answer = None
    if without_review:
        draft = read_digest(RawStore(store_url(get_settings())), when, draft=True)
        if draft is None:
            fail(f"no draft digest for {when}: run `boeflow digest build --date {when}` first")
        answer = {"decision": "without_review", "draft_hash": draft.draft_hash,
                  "reviewer": getpass.getuser(), "decided_at": datetime.now().astimezone(),
                  "nota": "publicado sin revisión humana (--without-review)"}
    _publish(when, answer, as_json)


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of digest.json (docs/digest.schema.json)."""
    from boeflow.digest.model import Digest

    out.file.write(json.dumps(Digest.model_json_schema(), ensure_ascii=False, indent=1) + "\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="digest")
