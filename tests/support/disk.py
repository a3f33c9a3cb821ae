"""Real small filesystems (tmpfs) for the disk-full tests: writes fail with ENOSPC for real."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mount: Path, size: str, *, fill: bool = False) -> Iterator[Path]:
    """``mount`` as a tmpfs of ``size`` (e.g. ``512k``); ``fill`` leaves no free byte."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs to simulate a full disk (needs root): "
                    f"{done.stderr.strip()}", pytrace=False)
    try:
        if fill:
            fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # ENOSPC: full
            finally:
                os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
