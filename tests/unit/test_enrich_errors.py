"""Setup and resource failures of the enrich and embed stages are one clear line, never a
traceback or a crashed run (issue 9, defect 6: disk full in the enrich and embed caches,
missing smoke models or weights).

Disk full is real: the data directory is a 256 KiB tmpfs filled to the last byte (the test
machines run as root); the SQLite embedding cache is filled with SQLite's own
``max_page_count`` limit on the real file, which gives the same "database or disk is full".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from boeflow.core.settings import Settings
from boeflow.index.embed import Embedder, EmbeddingCache, LocalBackend
from boeflow.models.loading import ModelSetupError, load_embedder
from tests.support.cli import run_boeflow
from tests.support.disk import tmpfs
from tests.support.generation import generation_env

SMALL_ENV = generation_env()


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tiny tmpfs with no free byte left."""
    with tmpfs(tmp_path / "full", "256k", fill=True) as mount:
        yield mount


def test_summarize_on_a_full_disk_is_one_line(full_disk: Path, smoke_models_dir: Path) -> None:
    done = run_boeflow(["summarize", "BOE-B-2024-45529"], script=True, extra={
        **SMALL_ENV, "BOEFLOW_PROFILE": "smoke", "BOEFLOW_DATA_DIR": str(full_disk / "data"),
        "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models_dir)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "disk full" in done.stderr and "enrich store" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) <= 2


def test_enrich_documents_on_a_full_disk_fail_per_document(
        full_disk: Path, smoke_models_dir: Path) -> None:
    from boeflow.enrich.day import enrich_documents
    from boeflow.review.source import read_document
    from tests.conftest import DOCUMENTS

    settings = Settings(profile="smoke", smoke_models_dir=smoke_models_dir,
                        data_dir=full_disk / "data", max_new_tokens=200,
                        summary_short_max_new_tokens=160, translate_max_new_tokens=32)
    docs = [read_document(DOCUMENTS / f"{name}.xml")
            for name in ("BOE-B-2024-45529", "BOE-A-2024-25801")]
    outcomes = enrich_documents(docs, settings)
    assert [o.doc_id for o in outcomes] == [d.id for d in docs]
    for outcome in outcomes:
        assert outcome.error is not None and "disk full" in outcome.error, outcome
        assert "\n" not in outcome.error


def test_embedding_cache_full_keeps_embedding(smoke_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path)
    db = sqlite3.connect(path)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    assert cache._db is not None
    cache._db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow any more
    embedder = Embedder(LocalBackend(smoke_settings), cache)
    texts = [f"Artículo {i}. Texto de prueba número {i} del Boletín." * 20 for i in range(60)]
    vectors = embedder.embed(texts)  # main: sqlite3.OperationalError: database or disk is full
    assert vectors.shape[0] == 60
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert cache.error is not None and "full" in cache.error
    again = embedder.embed(texts[:3])  # no cache any more, still embeds
    np.testing.assert_allclose(again, vectors[:3], atol=1e-6)


def test_missing_smoke_models_name_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no-smoke-models"
    done = run_boeflow(["summarize", "BOE-B-2024-45529"], script=True, extra={
        "BOEFLOW_PROFILE": "smoke", "BOEFLOW_SMOKE_MODELS_DIR": str(missing),
        "BOEFLOW_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "BOEFLOW_SMOKE_MODELS_DIR" in done.stderr and "boeflow models smoke" in done.stderr
    settings = Settings(profile="smoke", smoke_models_dir=missing)
    with pytest.raises(ModelSetupError, match="boeflow models smoke"):
        load_embedder(settings)


def test_missing_production_weights_name_the_model_setting(tmp_path: Path) -> None:
    done = run_boeflow(["summarize", "BOE-B-2024-45529"], script=True, extra={
        "BOEFLOW_PROFILE": "production", "BOEFLOW_DATA_DIR": str(tmp_path / "data"),
        "HF_HOME": str(tmp_path / "hf-empty"), "BOEFLOW_DEVICE": "cpu"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "BOEFLOW_SUMMARIZER_MODEL" in done.stderr
    assert "SINAI/ALIA-legal-administrative-7B-Instruct" in done.stderr


def test_a_day_with_missing_models_fails_at_once(tmp_path: Path) -> None:
    """Setup errors stop the run with one error, not one failure per document."""
    from boeflow.enrich.backends import clear_backends
    from boeflow.enrich.day import enrich_documents
    from boeflow.review.source import read_document
    from tests.conftest import DOCUMENTS

    clear_backends()
    settings = Settings(profile="smoke", smoke_models_dir=tmp_path / "none",
                        data_dir=tmp_path / "data")
    docs = [read_document(p) for p in sorted(DOCUMENTS.glob("BOE-B-*.xml"))]
    with pytest.raises(ModelSetupError, match="BOEFLOW_SMOKE_MODELS_DIR"):
        enrich_documents(docs, settings)
