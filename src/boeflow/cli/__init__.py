"""The ``boeflow`` command line. Each stage registers its commands from its own module; the
local operations toolkit (``boeflow services``, ``boeflow airflow``) registers its commands
through the ``boeflow.commands`` entry point, so the application never imports it."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from boeflow.cli import (
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
    state_cmd,
)

app = typer.Typer(
    name="boeflow",
    help="BOE → parse → chunk → embed → index/search → summarise/translate → review → digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_cmd.app, name="models")
app.add_typer(config_cmd.app, name="config")
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
# Installed extensions (the operations toolkit: pyproject's [project.entry-points]).
for _extension in entry_points(group="boeflow.commands"):
    _extension.load()(app)


def main() -> None:
    from boeflow.cli.boundary import run

    run(app)
