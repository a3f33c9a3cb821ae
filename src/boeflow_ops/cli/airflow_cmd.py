"""``boeflow airflow up|down|status``: the local multi-process Airflow (CeleryExecutor)."""

from __future__ import annotations

from pathlib import Path

import typer

from boeflow.cli.common import err_console, fail
from boeflow.core.settings import get_settings
from boeflow_ops.cli.services_cmd import JSON, show_statuses
from boeflow_ops.services import ServiceError
from boeflow_ops.services import airflow as af
from boeflow_ops.services import postgres as pg
from boeflow_ops.services import redis as rd

app = typer.Typer(help="Run the local Airflow 3 (api-server, scheduler, dag-processor, "
                  "triggerer, Celery worker) on loopback, with Redis and PostgreSQL.",
                  no_args_is_help=True)


@app.command()
def up(as_json: bool = JSON) -> None:
    """Start everything (idempotent) and print the UI URL and the password file."""
    settings = get_settings()
    try:
        statuses = af.start(settings)
    except ServiceError as exc:
        fail(str(exc), exc.log_excerpt)
    show_statuses([pg.status(settings), rd.status(settings), *statuses], as_json)
    layout = af.AirflowLayout.from_settings(settings)
    err_console.print(f"Airflow UI: {settings.airflow_url}  user: {settings.airflow_admin_user}"
                      f"  password file: {layout.password_file}", highlight=False,
                      markup=False, soft_wrap=True)


@app.command()
def down() -> None:
    """Stop the Airflow components (Redis and PostgreSQL keep running:
    `boeflow services stop` stops those)."""
    stopped = af.stop(get_settings())
    err_console.print(f"airflow: {'stopped' if stopped else 'was not running'}")


@app.command()
def status(as_json: bool = JSON) -> None:
    """Health of each component; exits 1 if one is not healthy."""
    settings = get_settings()
    statuses = [pg.status(settings), rd.status(settings), *af.status(settings)]
    show_statuses(statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command("secrets")
def write_secrets(
    directory: Path = typer.Option(..., "--dir", help="where to write the secret files"),
) -> None:
    """Generate (once) the Fernet key, JWT and session secrets and the admin password file
    for a deployment (the docker compose init job runs this). Prints file names only."""
    try:
        paths = af.ensure_deployment_secrets(directory, get_settings().airflow_admin_user)
    except (ServiceError, OSError) as exc:
        fail(f"cannot write secrets to {directory}: {exc}")
    for path in paths:
        err_console.print(f"{path} (mode 0600)", highlight=False, markup=False)
