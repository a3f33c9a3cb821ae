"""The raw store: every byte fetched from the BOE, laid out by publication date.

Addressed by an fsspec URL (a local directory by default, an object store such as
``s3://bucket/boe-raw`` in production) so that distributed workers share one store.
Layout, relative to the root::

    boe/YYYY/MM/DD/manifest.json
    boe/YYYY/MM/DD/sumario.xml | sumario.json | sumario-legacy.xml
    boe/YYYY/MM/DD/BOE-S-YYYY-NNN.pdf            (the day's sumario PDF, per diario)
    boe/YYYY/MM/DD/items/BOE-A-YYYY-N.xml|html|pdf

Writes go to a temporary name and are renamed into place, so a final name only ever holds
a complete, checked body, whenever the process dies.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import date
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from boeflow.config import Settings

TEMP_MARKER = ".part-"


def store_url(settings: Settings, data_dir: Path | None = None) -> str:
    """Where the raw store is: ``DATA_DIR/raw`` for an explicit data directory, else
    ``BOEFLOW_RAW_STORE_URL``, else ``BOEFLOW_DATA_DIR/raw``."""
    if data_dir is not None:
        return str(data_dir / "raw")
    return settings.raw_store_url or str(settings.data_dir / "raw")


def day_prefix(day: date) -> str:
    return f"boe/{day:%Y/%m/%d}"


class RawStore:
    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def read(self, relative: str) -> bytes:
        data: bytes = self.fs.cat_file(self.path(relative))
        return data

    def size(self, relative: str) -> int | None:
        try:
            return int(self.fs.size(self.path(relative)))
        except FileNotFoundError:
            return None

    def sha256(self, relative: str) -> str | None:
        try:
            return hashlib.sha256(self.read(relative)).hexdigest()
        except FileNotFoundError:
            return None

    def write_atomic(self, relative: str, data: bytes) -> None:
        """Write to ``<name>.part-<random>`` then rename over ``<name>``."""
        final = self.path(relative)
        temp = f"{final}{TEMP_MARKER}{uuid.uuid4().hex}"
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self._local:
            # fsync before rename: the final name must never point at unflushed data.
            with Path(temp).open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temp).replace(final)
        else:
            self.fs.pipe_file(temp, data)
            self.fs.mv(temp, final)

    def remove_stale_temps(self, prefix: str) -> int:
        """Delete temporary files left by a killed run under ``prefix``; return how many."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return 0
        stale = [p for p in self.fs.find(base) if TEMP_MARKER in p.rsplit("/", 1)[-1]]
        for path in stale:
            self.fs.rm_file(path)
        return len(stale)

    def list_files(self, prefix: str = "boe") -> list[str]:
        """Relative paths of every file under ``prefix`` (sorted)."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        start = len(self.root) + 1
        return sorted(p[start:] for p in self.fs.find(base))
