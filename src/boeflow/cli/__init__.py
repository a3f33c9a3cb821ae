"""The ``boeflow`` command line. Each stage registers its commands from its own module."""

from __future__ import annotations

import typer

from boeflow.cli import (
    airflow_cmd,
    config_cmd,
    digest_cmd,
    enrich_cmd,
    facts_cmd,
    fetch_cmd,
    links_cmd,
    models_cmd,
    parse_cmd,
    pipeline_cmd,
    search_cmd,
    services_cmd,
    state_cmd,
)

app = typer.Typer(
    name="boeflow",
    help="BOE → parse → chunk → embed → index/search → summarise/translate → review → digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(services_cmd.app, name="services")
app.add_typer(models_cmd.app, name="models")
app.add_typer(config_cmd.app, name="config")
app.add_typer(airflow_cmd.app, name="airflow")
# Stage commands register here, one line per module (keep alphabetical):
digest_cmd.register(app)
enrich_cmd.register(app)
facts_cmd.register(app)
fetch_cmd.register(app)
links_cmd.register(app)
parse_cmd.register(app)
pipeline_cmd.register(app)
search_cmd.register(app)
state_cmd.register(app)


def main() -> None:
    from boeflow.cli.boundary import run

    run(app)
