"""The operations commands of the ``boeflow`` CLI (entry point ``boeflow.commands``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from boeflow_ops.cli import airflow_cmd, services_cmd

    app.add_typer(services_cmd.app, name="services")
    app.add_typer(airflow_cmd.app, name="airflow")
