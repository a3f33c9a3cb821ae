"""Shared fixtures: the repository's BOE samples, the smoke models, settings for tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from boeflow.core.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "boe"
DOCUMENTS = SAMPLES / "documents"
PDFS = SAMPLES / "pdf"
SUMARIOS = SAMPLES / "sumario"
# The search tests' corpus: the documents shipped for search and the digest (issues 3-22).
# The review set's extra documents (issue 20) are not indexed there, so the search figures
# and rankings those tests assert stay comparable across issues.
SEARCH_CORPUS = [DOCUMENTS / f"{boe_id}.xml" for boe_id in (
    "BOE-A-1978-31229", "BOE-A-2020-4859", "BOE-A-2020-4866", "BOE-A-2020-4867",
    "BOE-A-2020-4871", "BOE-A-2024-22928", "BOE-A-2024-23422", "BOE-A-2024-23543",
    "BOE-A-2024-23620", "BOE-A-2024-24097", "BOE-A-2024-24105", "BOE-A-2024-25801",
    "BOE-A-2024-26250", "BOE-A-2024-27187", "BOE-A-2025-13788", "BOE-A-2025-9743",
    "BOE-B-2020-13284", "BOE-B-2024-43491", "BOE-B-2024-43583", "BOE-B-2024-45529",
    "BOE-B-2025-19396", "BOE-B-2025-20771")]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def smoke_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke models: those built by the test command (BOEFLOW_SMOKE_MODELS_DIR), or
    built here once per session."""
    from boeflow.models.smoke import build_smoke_models

    configured = os.environ.get("BOEFLOW_SMOKE_MODELS_DIR")
    target = Path(configured) if configured else tmp_path_factory.mktemp("smoke-models")
    build_smoke_models(target, SAMPLES)  # reuses complete models, builds missing ones
    return target


@pytest.fixture()
def smoke_settings(smoke_models_dir: Path, tmp_path: Path) -> Iterator[Settings]:
    """Settings of the smoke profile with a private data directory."""
    settings = Settings(profile="smoke", smoke_models_dir=smoke_models_dir,
                        data_dir=tmp_path / "data", samples_dir=SAMPLES)
    yield settings
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def live_settings() -> Settings:
    """Settings pointing at the services started by the test command; fails (never skips)
    when they are not running, so CI cannot pass without real services."""
    from boeflow_ops.services import elasticsearch as es
    from boeflow_ops.services import postgres as pg

    settings = Settings()
    for name, check in (("elasticsearch", es.status), ("postgresql", pg.status)):
        state = check(settings)
        if not state.healthy:
            pytest.fail(f"{name} is not running ({state.detail}); "
                        "start it with `boeflow services start`", pytrace=False)
    return settings
