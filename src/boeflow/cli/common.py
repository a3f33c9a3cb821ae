"""Helpers shared by CLI modules: clear one-line errors, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

err_console = Console(stderr=True)


def fail(message: str, detail: str = "", code: int = 1) -> NoReturn:
    """Print one clear error line (and an optional excerpt) to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if detail:
        err_console.print(detail, style="dim", highlight=False, markup=False)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
