"""``boeflow config show``."""

from __future__ import annotations

import typer

from boeflow.cli.common import print_json
from boeflow.core.settings import URL_SETTINGS, get_settings, redact_url

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


@app.command()
def show() -> None:
    """Print the effective settings (defaults < TOML file < BOEFLOW_* environment) as JSON.

    Secrets (passwords, API keys, credentials inside URLs) are shown as ``***``."""
    settings = get_settings()
    data = settings.model_dump(mode="json")  # SecretStr fields dump as "**********"
    for name in URL_SETTINGS:
        value = data.get(name)
        data[name] = redact_url(value) if isinstance(value, str) else value
    print_json(data)
