"""``boeflow services start|stop|status``."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum

import typer

from boeflow.cli.common import err_console, fail, print_json
from boeflow.config import get_settings
from boeflow.services import ServiceError, ServiceStatus
from boeflow.services import elasticsearch as es
from boeflow.services import postgres as pg

app = typer.Typer(help="Install, start, stop and inspect the local Elasticsearch and PostgreSQL.",
                  no_args_is_help=True)


class Which(StrEnum):
    all = "all"
    elasticsearch = "elasticsearch"
    postgresql = "postgresql"


def _selected(which: Which) -> list[str]:
    return ["elasticsearch", "postgresql"] if which is Which.all else [which.value]


def _show(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        print_json([asdict(s) for s in statuses])
        return
    for s in statuses:
        state = "healthy" if s.healthy else ("running, unhealthy" if s.running else "down")
        err_console.print(f"{s.name:<14} {state:<18} {s.version or '-':<12} {s.url}  ({s.detail})",
                          highlight=False, markup=False, soft_wrap=True)


ONLY = typer.Option(Which.all, "--only", help="Act on one service only.")
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


@app.command()
def start(only: Which = ONLY, as_json: bool = JSON,
          es_nodes: int | None = typer.Option(
              None, "--es-nodes", min=1, max=es.MAX_NODES,
              help="Elasticsearch nodes on loopback (default BOEFLOW_ES_NODES, 1); node k "
                   "listens on BOEFLOW_ES_URL's port + k - 1.")) -> None:
    """Install (first time) and start the services; waits until healthy. Idempotent."""
    settings = get_settings()
    if es_nodes is not None:
        settings = settings.model_copy(update={"es_nodes": es_nodes})
    statuses = []
    try:
        for name in _selected(only):
            statuses.append(es.start(settings) if name == "elasticsearch" else pg.start(settings))
    except ServiceError as exc:
        fail(str(exc), exc.log_excerpt)
    _show(statuses, as_json)


@app.command()
def stop(only: Which = ONLY) -> None:
    """Stop the services started by ``boeflow services start``."""
    settings = get_settings()
    for name in _selected(only):
        stopped = es.stop(settings) if name == "elasticsearch" else pg.stop(settings)
        err_console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


@app.command()
def status(only: Which = ONLY, as_json: bool = JSON) -> None:
    """Report versions and health; exits 1 if a selected service is not healthy."""
    settings = get_settings()
    statuses = [es.status(settings) if n == "elasticsearch" else pg.status(settings)
                for n in _selected(only)]
    _show(statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)
