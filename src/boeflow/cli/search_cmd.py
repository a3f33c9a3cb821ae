"""``boeflow es setup``, ``boeflow index``, ``boeflow search``, ``boeflow eval retrieval``."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from boeflow.cli.common import err_console, fail, parse_optional_day, print_json
from boeflow.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from boeflow.index.report import IndexReport

es_app = typer.Typer(help="Elasticsearch layout (index templates, versioned indices, aliases).",
                     no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate retrieval quality.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(es_app, name="es")
    app.add_typer(eval_app, name="eval")
    app.add_typer(kibana_app, name="kibana")
    app.command("index")(index)
    app.command("search")(search)


@es_app.command("setup")
def es_setup(as_json: bool = typer.Option(False, "--json")) -> None:
    """Create (idempotently) templates, versioned indices and aliases boe-documents,
    boe-chunks and boe-digests, with the vector dimension of the configured embedder."""
    from boeflow.index.client import SearchBackendError, es_session, setup_indices
    from boeflow.models.loading import embedding_dimension

    settings = get_settings()
    try:
        with es_session(settings) as client:
            result = setup_indices(client, settings, embedding_dimension(settings))
    except SearchBackendError as exc:
        fail(str(exc))
    if as_json:
        print_json({"created": result.created, "existing": result.existing, "dims": result.dims,
                    "upgraded": result.upgraded})
    else:
        err_console.print(f"created: {result.created or '-'}; existing: {result.existing or '-'};"
                          f" vector dims {result.dims}")
        for old, new in result.upgraded.items():
            err_console.print(f"upgraded: records of {old} copied to {new}, alias moved; "
                              f"{old} is kept (delete it once {new} is checked)")


def index(
    files: list[Path] | None = typer.Argument(None, help="Document files or directories."),
    day: str | None = typer.Option(None, "--date", help="A fetched day YYYY-MM-DD."),
    to: str | None = typer.Option(None, "--to", help="Last day of a range."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    force: bool = typer.Option(False, "--force", help="Re-index documents even when unchanged "
                               "(upgrades); summaries and reviews are kept."),
) -> None:
    """parse → chunk → embed → index a fetched day (or range) or the given files."""
    from boeflow.index.client import SearchBackendError
    from boeflow.index.files import expand_paths, index_files
    from boeflow.index.report import IndexReport

    settings = get_settings()
    start, end = parse_optional_day(day, "--date"), parse_optional_day(to, "--to")
    if files and start:
        fail("give either FILE... or --date, not both")
    if not start and not files:
        fail("nothing to index: give FILE... or --date YYYY-MM-DD")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    if start:
        report = _index_days(settings, start, end or start, force, columns)
    else:
        missing = [str(f) for f in files or [] if not f.exists()]
        if missing:
            fail(f"no such file: {', '.join(missing)}")
        targets = expand_paths(files or [])
        if not targets:
            fail("no documents found to index")
        try:
            with Progress(*columns, console=err_console, transient=True) as progress:
                task = progress.add_task("indexing", total=len(targets))
                report = index_files(targets, settings, force=force,
                                     on_document=lambda _id: progress.advance(task))
        except SearchBackendError as exc:
            fail(str(exc))
    assert isinstance(report, IndexReport)
    summary = report.as_dict()
    if settings.is_smoke:
        summary["note"] = "smoke profile: vectors come from a tiny random model"
    if as_json:
        print_json(summary)
    else:
        err_console.print(
            f"documents {report.documents}, chunks {report.chunks}, embedded {report.embedded}, "
            f"skipped as unchanged {report.skipped_unchanged} documents / "
            f"{report.chunks_unchanged} chunks, stale chunks deleted {report.deleted_stale}, "
            f"failed {len(report.failed)}", highlight=False)
        for doc_id, reason in report.failed.items():
            err_console.print(f"  failed {doc_id}: {reason}", highlight=False, markup=False)
    if report.failed:
        raise typer.Exit(1)


def _index_days(settings: Settings, start: date, end: date, force: bool,
                columns: tuple[Any, ...]) -> IndexReport:
    """``boeflow index --date``: each day through ``boeflow.jobs.index.index_day``, the
    batches the DAG runs, recorded in PostgreSQL as the DAG's task records them."""
    from boeflow.index.report import IndexReport
    from boeflow.jobs.common import TaskFailed
    from boeflow.jobs.index import index_day, plan_batches

    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    planned = sum(len(b.ids) for d in days for b in plan_batches(d.isoformat(), settings))
    if not planned:
        fail("no documents found to index")
    total = IndexReport()
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("indexing", total=planned)
        for current in days:
            try:
                total.add(index_day(current.isoformat(), settings, force=force,
                                    on_document=lambda _id: progress.advance(task)))
            except TaskFailed as exc:
                fail(str(exc))
    return total


def search(
    query: str = typer.Argument(..., help="What to look for, in Spanish."),
    mode: str = typer.Option("hybrid", "--mode", help="bm25, knn or hybrid (RRF, k=60)."),
    since: str | None = typer.Option(None, "--since", help="Published on or after YYYY-MM-DD."),
    until: str | None = typer.Option(None, "--until", help="Published on or before YYYY-MM-DD."),
    section: list[str] | None = typer.Option(None, "--section", help="BOE section (repeat)."),
    department: str | None = typer.Option(None, "--department", help="Department words."),
    rango: str | None = typer.Option(None, "--rango", help="Exact rango, e.g. 'Real Decreto'."),
    materia: str | None = typer.Option(None, "--materia", help="Exact materia."),
    size: int = typer.Option(10, "--size", help="Number of documents."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Hybrid search with filters; results grouped per document with citations."""
    from boeflow.index.client import SearchBackendError, es_session, names_for
    from boeflow.index.search import MODES, Filters, Searcher, SearchInputError

    settings = get_settings()
    if mode not in MODES:
        fail(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    filters = Filters(since=parse_optional_day(since, "--since"),
                      until=parse_optional_day(until, "--until"),
                      sections=tuple(s.upper() for s in section or ()),
                      department=department, rango=rango, materia=materia)
    embedder = None
    if mode != "bm25":
        from boeflow.index.embed import shared_embedder

        embedder = shared_embedder(settings)
    try:
        with es_session(settings) as client:
            results = Searcher(client, names_for(settings), embedder).search(
                query, mode, filters, size=size)
    except (SearchInputError, SearchBackendError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"query": query, "mode": mode, "smoke": settings.is_smoke,
                    "results": [r.as_dict() for r in results]})
        return
    if settings.is_smoke:
        err_console.print("[yellow]smoke profile: kNN scores come from a tiny random model[/]")
    if not results:
        err_console.print("no results")
    for n, result in enumerate(results, start=1):
        err_console.print(f"{n}. [bold]{result.doc_id}[/] {result.title[:120]}", highlight=False)
        err_console.print(f"   {result.citation['path']} — {result.citation['url']}",
                          highlight=False, markup=False)
        for hit in result.chunks[:1]:
            snippet = hit.highlights[0] if hit.highlights else hit.text[:200]
            err_console.print(f"   {snippet}", highlight=False, markup=False)
        for link in result.links[:5]:
            err_console.print(f"   ↳ {link['relation']} {link['target_id']}", highlight=False)


@eval_app.command("retrieval")
def eval_retrieval(
    set_file: Path | None = typer.Option(None, "--set", help="JSONL {query, relevant}; "
                                         "default: both shipped sets (known items and "
                                         "natural-language queries)."),
    mode: list[str] | None = typer.Option(None, "--mode", help="Modes to evaluate (repeat)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recall@1/5/10 and MRR@10 per mode over labelled sets."""
    from boeflow.evals.retrieval import SHIPPED_SETS, evaluate, load_set
    from boeflow.index.client import SearchBackendError, es_session, names_for
    from boeflow.index.embed import shared_embedder
    from boeflow.index.search import MODES, Searcher

    settings = get_settings()
    modes = [m for m in (mode or list(MODES))]
    bad = [m for m in modes if m not in MODES]
    if bad:
        fail(f"unknown --mode {', '.join(bad)}; use {', '.join(MODES)}")
    try:
        sets = ({str(set_file): load_set(set_file)} if set_file else
                {name: load_set(shipped=file) for name, file in SHIPPED_SETS.items()})
    except (OSError, ValueError) as exc:
        fail(f"cannot read the evaluation set: {exc}")
    embedder = shared_embedder(settings) if modes != ["bm25"] else None
    try:
        with es_session(settings) as client:
            searcher = Searcher(client, names_for(settings), embedder)
            reports = {name: evaluate(searcher, queries, modes)  # type: ignore[arg-type]
                       for name, queries in sets.items()}
    except SearchBackendError as exc:
        fail(str(exc))
    note = ("smoke profile: only the bm25 figures mean anything (kNN uses a tiny random model)"
            if settings.is_smoke else "")
    if as_json:
        print_json({"sets": {name: {"queries": len(sets[name]), "metrics": report}
                             for name, report in reports.items()}, "note": note})
        return
    for set_name, report in reports.items():
        err_console.print(f"[bold]{set_name}[/] ({len(sets[set_name])} queries)")
        for name, metrics in report.items():
            err_console.print(f"  {name:<7} " + "  ".join(
                f"{k}={v:.3f}" for k, v in metrics.items() if k != "queries"), highlight=False)
    if note:
        err_console.print(note)


kibana_app = typer.Typer(help="Kibana saved objects (data views, searches, dashboard).",
                         no_args_is_help=True)


@kibana_app.command("import")
def kibana_import(
    file: Path | None = typer.Option(None, "--file", help="NDJSON file "
                                     "(default docker/kibana/boeflow.ndjson)."),
    kibana_url: str | None = typer.Option(None, "--url", envvar="KIBANA_URL",
                                          help="Kibana base URL (or KIBANA_URL)."),
) -> None:
    """Post the saved objects to Kibana's import API (overwriting boeflow's own objects)."""
    from boeflow.index.kibana import DEFAULT_FILE, KibanaError, import_objects

    if not kibana_url:
        fail("set KIBANA_URL (or --url) to the Kibana base URL, e.g. http://localhost:5601")
    path = file or DEFAULT_FILE
    if not path.is_file():
        fail(f"no saved objects file at {path}")
    try:
        answer = import_objects(kibana_url, path)
    except KibanaError as exc:
        fail(str(exc))
    err_console.print(f"imported {answer.get('successCount', 0)} saved objects into {kibana_url}")
