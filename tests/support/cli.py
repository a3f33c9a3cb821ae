"""Run `boeflow …` as a user does: a child process with its own environment, a timeout, and
its output captured. The one subprocess runner of the tests; the variants the tests need are
parameters:

* ``env``: the whole environment (default: this process's); ``drop``: prefixes of variables
  removed from it (``("BOEFLOW_",)`` for a run that sees no outer setting); ``extra``:
  variables set on top;
* ``script``: the installed ``boeflow`` console script instead of ``python -m boeflow``
  (the entry point a user types);
* ``cwd``, ``input`` (stdin), ``text=False`` for bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, overload

REPO = Path(__file__).resolve().parents[2]
MODULE = [sys.executable, "-m", "boeflow"]
SCRIPT = Path(sys.executable).with_name("boeflow")


def cli_env(env: Mapping[str, str] | None = None, *, drop: Sequence[str] = (),
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ``os.environ``) without the ``drop`` prefixes, with ``extra``."""
    base = os.environ if env is None else env
    out = {k: v for k, v in base.items() if not (drop and k.startswith(tuple(drop)))}
    out.update(extra or {})
    return out


@overload
def run_boeflow(args: Sequence[str], *, env: Mapping[str, str] | None = ...,
                drop: Sequence[str] = ..., extra: Mapping[str, str] | None = ...,
                timeout: float = ..., cwd: Path | None = ..., script: bool = ...,
                input: str | None = ..., text: Literal[True] = ...
                ) -> subprocess.CompletedProcess[str]: ...


@overload
def run_boeflow(args: Sequence[str], *, env: Mapping[str, str] | None = ...,
                drop: Sequence[str] = ..., extra: Mapping[str, str] | None = ...,
                timeout: float = ..., cwd: Path | None = ..., script: bool = ...,
                input: bytes | None = ..., text: Literal[False]
                ) -> subprocess.CompletedProcess[bytes]: ...


def run_boeflow(args: Sequence[str], *, env: Mapping[str, str] | None = None,
                drop: Sequence[str] = (), extra: Mapping[str, str] | None = None,
                timeout: float = 300, cwd: Path | None = None, script: bool = False,
                input: str | bytes | None = None, text: bool = True
                ) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """``boeflow *args``; never raises on a non-zero exit (the tests read the return code)."""
    command = [str(SCRIPT)] if script else list(MODULE)
    return subprocess.run([*command, *args], env=cli_env(env, drop=drop, extra=extra),
                          cwd=cwd, input=input, capture_output=True, text=text,
                          timeout=timeout, check=False)
