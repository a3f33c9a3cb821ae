"""Helpers shared by CLI modules: clear one-line errors, JSON output."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

err_console = Console(stderr=True)


def fail(message: str, detail: str = "", code: int = 1) -> NoReturn:
    """Print one clear error line (and an optional excerpt) to stderr and exit non-zero."""
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False,
                      soft_wrap=True)
    if detail:
        err_console.print(detail, style="dim", highlight=False, markup=False)
    raise typer.Exit(code)


def parse_day(value: str, option: str) -> date:
    """A ``YYYY-MM-DD`` command-line date, or one clear error naming the option."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        fail(f"{option} {value!r} is not a date in YYYY-MM-DD form")


def parse_optional_day(value: str | None, option: str) -> date | None:
    return None if value is None else parse_day(value, option)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def record_state(record: Any, *args: Any) -> None:
    """Record a step's outcome in PostgreSQL as the DAG's task does (``boeflow.jobs``
    ``record_*``); an unreachable database is a warning line, the step's work stands."""
    from boeflow.core.errors import BoeflowError
    from boeflow.state.db import StateError

    try:
        record(*args)
    except (StateError, BoeflowError) as exc:
        err_console.print(Text.assemble(("warning: ", "bold yellow"),
                                        f"the day's state was not recorded: {exc}"),
                          highlight=False, soft_wrap=True)
