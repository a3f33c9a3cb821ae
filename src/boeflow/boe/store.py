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

import errno
import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Collection
from datetime import date, timedelta
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from boeflow.boe.manifest import MANIFEST_NAME, DayManifest
from boeflow.core.errors import BoeflowError
from boeflow.core.ids import is_boe_id
from boeflow.core.settings import Settings, redact_url

TEMP_MARKER = ".part-"
# What a key segment may be made of: BOE ids, dates, file names. No spaces, no separators,
# nothing a shell, a URL or another filesystem would read differently.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class StoreKeyError(BoeflowError, ValueError):
    """A key that does not name a place inside the store (absolute, ``..``, odd bytes)."""


class StoreFull(BoeflowError):
    """The store's disk (or quota) is full: nothing was left half-written."""


def check_key(relative: str) -> str:
    """``relative`` if it is a clean key under the store root, else StoreKeyError.

    Keys are ``/``-separated segments of ``[A-Za-z0-9._-]`` not starting with a dot, so
    ``..``, absolute paths, backslashes, NULs, ``~`` and URL syntax cannot appear; this holds
    for object stores too, where a key like ``a/../../b`` would otherwise be normalised by
    the client library."""
    if not isinstance(relative, str) or not relative:
        raise StoreKeyError(f"empty store key {relative!r}")
    segments = relative.split("/")
    bad = [seg for seg in segments if not _SEGMENT.fullmatch(seg)]
    if bad or posixpath.normpath(relative) != relative:
        shown = relative if len(relative) <= 120 else relative[:119] + "…"
        raise StoreKeyError(f"refusing store key {shown!r}: it does not name a file inside "
                            "the raw store")
    return relative


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
        """The backend path of a key; refuses keys that would leave the root."""
        full = f"{self.root}/{check_key(relative)}"
        if self._local:
            # Defence in depth against symlinks planted inside the store.
            root = Path(self.root).resolve()
            resolved = Path(full).resolve()
            if resolved != root and root not in resolved.parents:
                raise StoreKeyError(f"refusing store key {relative!r}: it resolves to "
                                    f"{resolved}, outside the raw store {root}")
        return full

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
        try:
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
        except BaseException as exc:
            self._discard(temp)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"disk full: no space left to write {relative} in the raw "
                                f"store {redact_url(self.url)}") from exc
            raise

    def _discard(self, temp: str) -> None:
        """Remove a temporary file after a failed write (best effort: the next run's
        ``remove_stale_temps`` also finds it)."""
        try:
            if self.fs.exists(temp):
                self.fs.rm_file(temp)
        except OSError:
            pass

    def remove_stale_temps(self, prefix: str, *, recursive: bool = True) -> int:
        """Delete temporary files left by a killed run under ``prefix`` (only those directly
        in it when not ``recursive``); return how many."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return 0
        found = self.fs.find(base) if recursive else self.fs.ls(base, detail=False)
        stale = [p for p in found if TEMP_MARKER in str(p).rsplit("/", 1)[-1]]
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


# When a fetched item is stored in several representations, parse the most structured one.
_SOURCE_PREFERENCE = {"xml": 0, "html": 1, "htm": 1, "pdf": 2}


def load_manifest(store: RawStore, day: date) -> DayManifest | None:
    """The day's manifest, None when the day was never fetched; ValueError when the stored
    file cannot be read as one."""
    path = f"{day_prefix(day)}/{MANIFEST_NAME}"
    if not store.exists(path):
        return None
    return DayManifest.model_validate_json(store.read(path))


def fetched_day_files(settings: Settings, start: date, end: date, workdir: Path,
                      ids: Collection[str] | None = None) -> list[Path]:
    """The item documents of fetched days in the raw store (copied locally when the store
    is remote), in file-name order; XML is preferred over HTML over PDF. With ``ids``, only
    those items' documents (a batch reads its own files, not the whole day's)."""
    store = RawStore(store_url(settings))
    files: list[Path] = []
    current = start
    while current <= end:
        items = f"{day_prefix(current)}/items"
        if store.exists(items):
            best: dict[str, str] = {}
            for name in sorted(store.fs.ls(store.path(items), detail=False)):
                base = str(name).rsplit("/", 1)[-1]
                stem, _, suffix = base.rpartition(".")
                if ".part-" in base or suffix not in _SOURCE_PREFERENCE or not is_boe_id(stem):
                    continue  # temporaries, and anything fetch would never have written
                if ids is not None and stem not in ids:
                    continue
                current_best = best.get(stem)
                if current_best is None or _SOURCE_PREFERENCE[suffix] < _SOURCE_PREFERENCE[
                        current_best.rpartition(".")[2]]:
                    best[stem] = base
            for base in best.values():
                local = Path(store.path(f"{items}/{base}"))
                if not local.exists():
                    local = workdir / base
                    local.write_bytes(store.read(f"{items}/{base}"))
                files.append(local)
        current += timedelta(days=1)
    return files
