"""``boeflow config show``."""

from __future__ import annotations

import typer

from boeflow.cli.common import print_json
from boeflow.config import get_settings

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


@app.command()
def show() -> None:
    """Print the effective settings (defaults < TOML file < BOEFLOW_* environment) as JSON."""
    settings = get_settings()
    data = settings.model_dump(mode="json")
    data["pg_password"] = "***"  # noqa: S105
    print_json(data)
