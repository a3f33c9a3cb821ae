"""Embedding stage: chunk texts → unit-norm dense vectors (bge-m3 or a drop-in).

* in-process sentence-transformers (CUDA if present with fp16, else CPU), length-sorted
  batches so that padding is minimal, ``max_seq_length`` from settings;
* or a remote HTTP embeddings server (text-embeddings-inference's ``POST /embed``) so many
  Airflow workers share one GPU-served model;
* a persistent cache keyed by (model id, revision, text hash): a rerun or an unchanged chunk
  costs no model work.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from numpy.typing import NDArray
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from boeflow.core.settings import Settings
from boeflow.models.loading import embedding_dimension, load_embedder
from boeflow.models.pool import EMBEDDER, POOL

Vectors = NDArray[np.float32]
log = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingBackend(Protocol):
    model_key: str

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Vectors: ...

    def close(self) -> None: ...


class LocalBackend:
    """sentence-transformers in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_key = f"{settings.embed_model}@{settings.embed_revision or 'default'}"
        self._model: Any = None
        self._dimension: int | None = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_embedder(self.settings)
        return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = embedding_dimension(self.settings)
        return self._dimension

    def close(self) -> None:
        self._model = None  # the weights are freed with the last reference

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sort by length so each batch pads to similar lengths; restore order after.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        sorted_texts = [texts[i] for i in order]
        encoded = self.model.encode(
            sorted_texts, batch_size=self.settings.embed_batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32)
        out: Vectors = np.empty_like(encoded)
        out[order] = encoded
        return out


class RemoteBackend:
    """A text-embeddings-inference compatible server (``POST {url}/embed``)."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url.rstrip("/")
        self.model_key = f"{settings.embed_model}@{settings.embed_revision or 'default'}"
        self._client = httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0))
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension probe"]).shape[1])
        return self._dimension

    @retry(retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError)),
           stop=stop_after_attempt(4), wait=wait_exponential_jitter(multiplier=0.5, max=8),
           reraise=True)
    def _post(self, batch: list[str]) -> list[list[float]]:
        response = self._client.post(f"{self.url}/embed",
                                     json={"inputs": batch, "normalize": True, "truncate": True})
        response.raise_for_status()
        data: list[list[float]] = response.json()
        return data

    def close(self) -> None:
        self._client.close()

    def encode(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        size = self.settings.embed_batch_size
        for start in range(0, len(texts), size):
            rows.extend(self._post(list(texts[start:start + size])))
        array = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        unit: Vectors = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
        return unit


class EmbeddingCache:
    """SQLite cache of vectors keyed by (model key, text hash). Safe across processes.

    The cache only saves work: when it cannot be opened or written (disk full — SQLite's
    "database or disk is full" —, a read-only or corrupt file) it logs one warning line,
    records why in ``error`` and stops caching, and embedding goes on without it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, "
                             "dim INTEGER, vector BLOB, PRIMARY KEY (model, hash))")
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        self.error = f"embedding cache {self.path} disabled: {exc}"
        log.warning("%s; embedding without a cache", self.error)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        with self._lock:
            if self._db is None:
                return found
            try:
                for start in range(0, len(hashes), 500):
                    part = list(hashes[start:start + 500])
                    marks = ",".join("?" * len(part))
                    rows = self._db.execute(
                        f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})",  # noqa: S608 - placeholders only
                        [model, *part]).fetchall()
                    for digest, blob in rows:
                        found[digest] = np.frombuffer(blob, dtype=np.float32)
            except sqlite3.Error as exc:
                self._disable(exc)
                return {}
        return found

    def put_many(self, model: str, items: dict[str, Vectors]) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                        [(model, h, int(v.shape[0]), v.astype(np.float32).tobytes())
                         for h, v in items.items()])
            except sqlite3.Error as exc:
                self._disable(exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@dataclass
class EmbedStats:
    requested: int = 0
    cached: int = 0
    computed: int = 0


@dataclass
class Embedder:
    """The embedding stage: backend + cache."""

    backend: EmbeddingBackend
    cache: EmbeddingCache | None
    stats: EmbedStats = field(default_factory=EmbedStats)

    @property
    def dimension(self) -> int:
        return self.backend.dimension

    @property
    def model_key(self) -> str:
        return self.backend.model_key

    def embed(self, texts: Sequence[str]) -> Vectors:
        hashes = [text_hash(t) for t in texts]
        cached = self.cache.get_many(self.model_key, hashes) if self.cache else {}
        missing = sorted({h: i for i, h in enumerate(hashes) if h not in cached}.items(),
                         key=lambda item: item[1])
        if missing:
            fresh = self.backend.encode([texts[i] for _, i in missing])
            new = {h: fresh[n] for n, (h, _) in enumerate(missing)}
            if self.cache:
                self.cache.put_many(self.model_key, new)
            cached.update(new)
        self.stats.requested += len(texts)
        self.stats.computed += len(missing)
        self.stats.cached += len(texts) - len(missing)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([cached[h] for h in hashes]).astype(np.float32)

    def close(self) -> None:
        """Release the model, the HTTP client and the cache."""
        self.backend.close()
        if self.cache is not None:
            self.cache.close()


def _cache_path(settings: Settings) -> Path:
    return settings.data_dir / "cache" / "embeddings.sqlite"


def build_embedder(settings: Settings, remote_url: str | None = None,
                   use_cache: bool = True) -> Embedder:
    """A new embedder (its model loads on first use); the caller closes it. Pipelines use
    ``shared_embedder``."""
    url = remote_url or settings.embed_remote_url
    backend: EmbeddingBackend = RemoteBackend(settings, url) if url else LocalBackend(settings)
    cache = EmbeddingCache(_cache_path(settings)) if use_cache else None
    return Embedder(backend=backend, cache=cache)


# --- one embedder per process and parameter set, in the process's model pool --------------


def _embedder_key(settings: Settings, remote_url: str | None, use_cache: bool
                  ) -> tuple[Any, ...]:
    return (settings.embed_model, settings.embed_revision, settings.device,
            settings.embed_batch_size, settings.embed_max_seq_length, settings.hf_offline,
            remote_url or settings.embed_remote_url,
            str(_cache_path(settings)) if use_cache else None)


def shared_embedder(settings: Settings, remote_url: str | None = None,
                    use_cache: bool = True) -> Embedder:
    """The process's embedder for these settings, built on first use and reused by every
    later batch, search and digest of the process (one model load per model)."""
    return POOL.get(EMBEDDER, _embedder_key(settings, remote_url, use_cache),
                    lambda: build_embedder(settings, remote_url, use_cache))


def close_embedders() -> None:
    """Close and forget every shared embedder (the end of a process; tests)."""
    POOL.close(EMBEDDER)
