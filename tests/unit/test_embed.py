"""The embedding stage: unit vectors in input order, the cache, the remote backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from boeflow.core.settings import Settings
from boeflow.index.embed import (
    Embedder,
    EmbeddingCache,
    LocalBackend,
    RemoteBackend,
    build_embedder,
)

TEXTS = [
    "Artículo 14. Los españoles son iguales ante la ley.",
    "Disposición final única. Entrada en vigor.",
    "El plazo de presentación de solicitudes será de un mes a contar desde el día siguiente "
    "al de la publicación de este extracto en el Boletín Oficial del Estado.",
    "Artículo 14. Los españoles son iguales ante la ley.",  # a duplicate
]


def test_local_backend_keeps_order_and_matches_plain_encode(smoke_settings: Settings) -> None:
    backend = LocalBackend(smoke_settings)
    ours = backend.encode(TEXTS)
    plain = SentenceTransformer(smoke_settings.embed_model, device="cpu").encode(
        TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    assert ours.shape[1] == backend.dimension


def test_cache_avoids_model_work_and_is_keyed_by_model(smoke_settings: Settings,
                                                       tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embedder = Embedder(LocalBackend(smoke_settings), cache)
    first = embedder.embed(TEXTS)
    assert embedder.stats.computed == 3  # the duplicate is computed once
    again = Embedder(LocalBackend(smoke_settings), EmbeddingCache(tmp_path / "cache.sqlite"))
    second = again.embed(TEXTS)
    assert again.stats.computed == 0 and again.stats.cached == 4
    np.testing.assert_array_equal(first, second)
    other = smoke_settings.model_copy(update={"embed_revision": "another-revision"})
    third = Embedder(LocalBackend(other), EmbeddingCache(tmp_path / "cache.sqlite"))
    third.embed(TEXTS[:1])
    assert third.stats.computed == 1


@pytest.fixture()
def embeddings_server(smoke_settings: Settings) -> Iterator[str]:
    """A text-embeddings-inference compatible ``POST /embed`` on loopback, serving the smoke
    embedder (real model, real HTTP), as a TEI server would serve bge-m3."""
    model = SentenceTransformer(smoke_settings.embed_model, device="cpu")
    failures = {"left": 1}  # the first request fails with 503 to exercise the retry

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if failures["left"]:
                failures["left"] -= 1
                self.send_response(503)
                self.end_headers()
                return
            vectors = model.encode(body["inputs"], normalize_embeddings=body["normalize"])
            payload = json.dumps(vectors.tolist()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_backend_gives_the_local_vectors(smoke_settings: Settings,
                                                embeddings_server: str) -> None:
    remote = RemoteBackend(smoke_settings, embeddings_server)
    np.testing.assert_allclose(remote.encode(TEXTS), LocalBackend(smoke_settings).encode(TEXTS),
                               atol=1e-5)
    embedder = build_embedder(smoke_settings, remote_url=embeddings_server, use_cache=False)
    assert isinstance(embedder.backend, RemoteBackend)
    assert embedder.dimension == LocalBackend(smoke_settings).dimension
