"""The CLI's one error boundary: every command runs inside it.

Known failures become one line on stderr naming the BOE id, file or setting, and a non-zero
exit; an unexpected one is still a single line (``BOEFLOW_DEBUG=1`` re-raises it with its
traceback for developers). Nothing here knows about individual commands.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tomllib
from collections.abc import Callable

from pydantic import ValidationError

from boeflow.core.errors import BoeflowError, one_line
from boeflow.core.settings import redact_url

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _settings_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        field = ".".join(str(part) for part in error.get("loc", ()))
        name = f"BOEFLOW_{field.upper()}" if field else "settings"
        problems.append(f"{name}: {error.get('msg', 'invalid value')}")
    return "invalid setting " + "; ".join(problems)


def _elasticsearch_problem(exc: BaseException) -> str | None:
    try:
        from elasticsearch import ApiError, TransportError
    except ImportError:  # pragma: no cover - always installed
        return None
    if isinstance(exc, TransportError):
        return (f"Elasticsearch is unreachable or did not answer in time "
                f"({type(exc).__name__}); check BOEFLOW_ES_URL and `boeflow services status`")
    if isinstance(exc, ApiError):
        return f"Elasticsearch refused the request: {exc.message} ({exc.meta.status})"
    return None


def describe(exc: BaseException) -> str:
    """The one line shown for ``exc``."""
    if isinstance(exc, BoeflowError):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return _settings_problem(exc)
    if isinstance(exc, tomllib.TOMLDecodeError):
        config = os.environ.get("BOEFLOW_CONFIG", "boeflow.toml")
        return f"cannot read the settings file {config}: {exc}"
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"disk full{where}: free space and rerun (finished work is kept)"
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return f"disk full: a cache database cannot grow ({exc}); free space and rerun"
    es_problem = _elasticsearch_problem(exc)
    if es_problem:
        return es_problem
    if isinstance(exc, UnicodeError):
        return ("the input is not valid UTF-8 text "
                f"({type(exc).__name__}: {str(exc)[:120]})")
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to be processed"
    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large for this machine's settings"
    if isinstance(exc, OSError):
        target = f" {redact_url(str(exc.filename))}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}:{target}" if target else (
            f"{type(exc).__name__}: {exc}")
    text = one_line(exc) if str(exc).strip() else ""
    return (f"unexpected {type(exc).__name__}: {text} "
            "(set BOEFLOW_DEBUG=1 to see the traceback)")


def run(command: Callable[[], object]) -> None:
    """Run the CLI; exit with one line instead of a traceback on any failure."""
    try:
        command()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as exc:
        if os.environ.get("BOEFLOW_DEBUG") == "1":
            raise
        _print(describe(exc))
        sys.exit(EXIT_FAILURE)


def _print(message: str) -> None:
    from rich.text import Text

    from boeflow.cli.common import err_console

    # Text, not markup: messages quote hostile input, which may contain [brackets].
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False,
                      soft_wrap=True)
