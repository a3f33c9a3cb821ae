"""Settings: production defaults name the real models; env and TOML override; smoke profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from boeflow.config import (
    PRODUCTION_EMBEDDER,
    PRODUCTION_SUMMARIZER,
    PRODUCTION_TRANSLATOR,
    Settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("BOEFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray ./boeflow.toml


def test_production_defaults_name_the_real_models() -> None:
    settings = Settings()
    assert settings.profile == "production"
    assert settings.embed_model == PRODUCTION_EMBEDDER == "BAAI/bge-m3"
    assert settings.summarizer_model == PRODUCTION_SUMMARIZER
    assert settings.summarizer_model == "SINAI/ALIA-legal-administrative-7B-Instruct"
    assert settings.translator_model == PRODUCTION_TRANSLATOR
    assert settings.translator_model == "gplsi/Aitana-2B-SI-Instruct-Aligned"
    assert settings.hf_offline is True


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOEFLOW_EMBED_MODEL", "littlejohn-ai/bge-m3-spa-law-qa")
    monkeypatch.setenv("BOEFLOW_EMBED_REVISION", "abc123")
    monkeypatch.setenv("BOEFLOW_ES_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("BOEFLOW_EMBED_BATCH_SIZE", "64")
    settings = Settings()
    assert settings.embed_model == "littlejohn-ai/bge-m3-spa-law-qa"
    assert settings.embed_revision == "abc123"
    assert settings.es_url == "http://127.0.0.1:9999"
    assert settings.embed_batch_size == 64


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('device = "cpu"\npg_port = 6543\nes_url = "http://10.0.0.1:9200"\n',
                      encoding="utf-8")
    monkeypatch.setenv("BOEFLOW_CONFIG", str(config))
    monkeypatch.setenv("BOEFLOW_ES_URL", "http://127.0.0.1:9201")
    settings = Settings()
    assert settings.device == "cpu"
    assert settings.pg_port == 6543
    assert settings.es_url == "http://127.0.0.1:9201"


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOEFLOW_PROFILE", "staging")
    with pytest.raises(ValueError, match="profile"):
        Settings()


def test_smoke_profile_points_at_local_models(tmp_path: Path) -> None:
    settings = Settings(profile="smoke", smoke_models_dir=tmp_path / "m")
    assert settings.is_smoke
    assert settings.embed_model == str(tmp_path / "m" / "embedder")
    assert settings.summarizer_model == str(tmp_path / "m" / "summarizer")
    assert settings.translator_model == str(tmp_path / "m" / "translator")


def test_smoke_profile_keeps_an_explicit_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOEFLOW_PROFILE", "smoke")
    monkeypatch.setenv("BOEFLOW_SUMMARIZER_MODEL", "/models/alia")
    settings = Settings()
    assert settings.summarizer_model == "/models/alia"
    assert settings.embed_model.endswith("embedder")
