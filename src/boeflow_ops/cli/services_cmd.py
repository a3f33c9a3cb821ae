"""``boeflow services start|stop|status``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from enum import StrEnum

import typer

from boeflow.cli.common import err_console, fail, print_json
from boeflow.core.settings import Settings, get_settings
from boeflow_ops.services import ServiceError, ServiceStatus
from boeflow_ops.services import airflow as af
from boeflow_ops.services import elasticsearch as es
from boeflow_ops.services import postgres as pg
from boeflow_ops.services import redis as rd

app = typer.Typer(help="Install, start, stop and inspect the local services: Elasticsearch, "
                  "PostgreSQL, Redis and (with --only airflow) the local Airflow.",
                  no_args_is_help=True)


class Which(StrEnum):
    all = "all"
    elasticsearch = "elasticsearch"
    postgresql = "postgresql"
    redis = "redis"
    airflow = "airflow"


# `all` starts the light services; Airflow (five processes) starts only when asked for.
DEFAULT = ("elasticsearch", "postgresql", "redis")


def _starters() -> dict[str, Callable[[Settings], list[ServiceStatus]]]:
    return {"elasticsearch": lambda s: [es.start(s)], "postgresql": lambda s: [pg.start(s)],
            "redis": lambda s: [rd.start(s)], "airflow": af.start}


def _statuses() -> dict[str, Callable[[Settings], list[ServiceStatus]]]:
    return {"elasticsearch": lambda s: [es.status(s)], "postgresql": lambda s: [pg.status(s)],
            "redis": lambda s: [rd.status(s)], "airflow": af.status}


def _airflow_started(settings: Settings) -> bool:
    layout = af.AirflowLayout.from_settings(settings)
    return any(af.component_pid(layout, c) is not None for c in af.COMPONENTS)


def show_statuses(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        print_json([asdict(s) for s in statuses])
        return
    for s in statuses:
        state = "healthy" if s.healthy else ("running, unhealthy" if s.running else "down")
        err_console.print(f"{s.name:<22} {state:<18} {s.version or '-':<12} {s.url}  "
                          f"({s.detail})", highlight=False, markup=False, soft_wrap=True)


ONLY = typer.Option(Which.all, "--only", help="Act on one service only.")
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


@app.command()
def start(only: Which = ONLY, as_json: bool = JSON,
          es_nodes: int | None = typer.Option(
              None, "--es-nodes", min=1, max=es.MAX_NODES,
              help="Elasticsearch nodes on loopback (default BOEFLOW_ES_NODES, 1); node k "
                   "listens on BOEFLOW_ES_URL's port + k - 1.")) -> None:
    """Install (first time) and start the services; waits until healthy. Idempotent.
    Without --only: Elasticsearch, PostgreSQL and Redis."""
    settings = get_settings()
    if es_nodes is not None:
        settings = settings.model_copy(update={"es_nodes": es_nodes})
    names = DEFAULT if only is Which.all else (only.value,)
    statuses: list[ServiceStatus] = []
    try:
        for name in names:
            statuses.extend(_starters()[name](settings))
    except ServiceError as exc:
        fail(str(exc), exc.log_excerpt)
    show_statuses(statuses, as_json)
    if only is Which.airflow:
        layout = af.AirflowLayout.from_settings(settings)
        err_console.print(f"Airflow UI: {settings.airflow_url}  user: "
                          f"{settings.airflow_admin_user}  password file: "
                          f"{layout.password_file}", highlight=False, markup=False,
                          soft_wrap=True)


@app.command()
def stop(only: Which = ONLY) -> None:
    """Stop the services started by ``boeflow services start`` (all of them, Airflow
    included, without --only)."""
    settings = get_settings()
    stoppers = {"airflow": af.stop, "redis": rd.stop, "postgresql": pg.stop,
                "elasticsearch": es.stop}
    names = list(stoppers) if only is Which.all else [only.value]
    for name in names:
        stopped = stoppers[name](settings)
        err_console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


@app.command()
def status(only: Which = ONLY, as_json: bool = JSON) -> None:
    """Report versions and health; exits 1 if a selected service is not healthy. Without
    --only, the Airflow components are listed when any of them was started."""
    settings = get_settings()
    if only is Which.all:
        names = [*DEFAULT, *(["airflow"] if _airflow_started(settings) else [])]
    else:
        names = [only.value]
    statuses = [s for name in names for s in _statuses()[name](settings)]
    show_statuses(statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)
