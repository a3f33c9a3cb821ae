"""Whole-pipeline commands. (``boeflow enrich`` now lives with its stage, in
``boeflow.cli.enrich_cmd``.)"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app  # nothing registered here any more
