"""``boeflow config show`` and ``boeflow config groups``."""

from __future__ import annotations

import typer

from boeflow.cli.common import fail, print_json
from boeflow.core.settings import GROUPS, URL_SETTINGS, Settings, get_settings, redact_url

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


@app.command()
def show(
    group: list[str] = typer.Option(
        [], "--group", "-g", help=f"only the settings of this group (repeatable): "
        f"{', '.join(GROUPS)}"),
) -> None:
    """Print the effective settings (defaults < TOML file < BOEFLOW_* environment) as JSON.

    Secrets (passwords, API keys, credentials inside URLs) are shown as ``***``. The keys
    are the field names (``BOEFLOW_<KEY>``), whatever the group."""
    unknown = [name for name in group if name not in GROUPS]
    if unknown:
        fail(f"unknown settings group {unknown[0]!r}; the groups are {', '.join(GROUPS)}")
    settings = get_settings()
    data = settings.model_dump(mode="json")  # SecretStr fields dump as "**********"
    for name in URL_SETTINGS:
        value = data.get(name)
        data[name] = redact_url(value) if isinstance(value, str) else value
    if group:
        wanted = {field for name in group for field in Settings.groups()[name]}
        data = {key: value for key, value in data.items() if key in wanted}
    print_json(data)


@app.command()
def groups() -> None:
    """Print the settings groups as JSON: ``{group: [field names]}``."""
    print_json(Settings.groups())
