"""Outputs stored as JSON files under ``settings.data_dir/enrich``.

* Records (one summary or translation of one document) are keyed by model id, revision,
  prompt version and source hash (plus the generation parameters): a rerun loads the
  record and generates nothing; a new prompt version is a new key, so it regenerates.
* Single generations (map and reduce notes of long documents) are keyed the same way by
  their rendered prompt, so an interrupted map-reduce resumes where it stopped.

Files are written atomically (temporary file, then rename) so a crash never leaves a
half-written record that a later run would trust. A write that fails (disk full, quota, read-
only file system) raises ``EnrichStoreError``: one line naming the store and the cause, which
the enrich step reports as that document's failure and the CLI prints as its error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from boeflow.core.errors import BoeflowError
from boeflow.core.settings import Settings

T = TypeVar("T", bound=BaseModel)


def cache_key(**parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "_"


class EnrichStoreError(BoeflowError):
    """The enrich store cannot be written; the message names it and the cause."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    except OSError as exc:
        raise _store_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _store_error(path, exc) from exc
        raise


def _store_error(path: Path, exc: OSError) -> EnrichStoreError:
    cause = "disk full" if exc.errno in _FULL else "cannot write"
    root = next((p for p in path.parents if p.name == "enrich"), path.parent)
    return EnrichStoreError(f"enrich store {root}: {cause} ({exc.strerror or exc}) while "
                            f"writing {path.name}; free space or set BOEFLOW_DATA_DIR")


class EnrichStore:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / "enrich"

    def record_path(self, doc_id: str, kind: str, key: str) -> Path:
        return self.root / "records" / _safe(doc_id) / f"{kind}-{key[:32]}.json"

    def load_record(self, doc_id: str, kind: str, key: str, model: type[T]) -> T | None:
        path = self.record_path(doc_id, kind, key)
        if not path.is_file():
            return None
        return model.model_validate_json(path.read_text(encoding="utf-8"))

    def save_record(self, record: BaseModel, doc_id: str, kind: str, key: str) -> Path:
        path = self.record_path(doc_id, kind, key)
        _write_atomic(path, record.model_dump_json(indent=2))
        return path

    def rewrite_record(self, path: Path, record: BaseModel) -> None:
        """Replace a stored record in place (e.g. with a fresh review)."""
        _write_atomic(path, record.model_dump_json(indent=2))

    def record_files(self, doc_id: str) -> list[Path]:
        folder = self.root / "records" / _safe(doc_id)
        return sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)

    def save_json(self, relative: str, data: Any) -> Path:
        """Write ``data`` as JSON at ``relative`` under the store (atomically)."""
        path = self.root / relative
        _write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1))
        return path

    def _generation_path(self, key: str) -> Path:
        return self.root / "generations" / key[:2] / f"{key}.json"

    def load_generation(self, key: str) -> dict[str, Any] | None:
        path = self._generation_path(key)
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def save_generation(self, key: str, data: dict[str, Any]) -> None:
        _write_atomic(self._generation_path(key), json.dumps(data, ensure_ascii=False))
