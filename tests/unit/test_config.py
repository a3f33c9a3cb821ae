"""Settings: production defaults name the real models; env and TOML override; smoke profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from boeflow.core.settings import (
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


def test_config_show_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9, defect 7: passwords, API keys and credentials inside URLs never printed."""
    from typer.testing import CliRunner

    from boeflow.cli import app
    from boeflow.core.settings import get_settings

    monkeypatch.setenv("BOEFLOW_PG_PASSWORD", "pg-s3cret")
    monkeypatch.setenv("BOEFLOW_GEN_HTTP_API_KEY", "sk-api-s3cret")
    monkeypatch.setenv("BOEFLOW_ES_URL", "https://elastic:es-s3cret@es.example:9200")
    monkeypatch.setenv("BOEFLOW_RAW_STORE_URL", "s3://key:raw-s3cret@bucket/boe")
    monkeypatch.setenv("BOEFLOW_GEN_HTTP_URL", "http://u:gen-s3cret@llm:8000/v1")
    monkeypatch.setenv("BOEFLOW_EMBED_REMOTE_URL", "http://u:tei-s3cret@tei:8080")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config", "show"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "https://***@es.example:9200" in result.output
    settings = Settings()
    # The real values stay usable by the code that needs them.
    assert settings.pg_password.get_secret_value() == "pg-s3cret"
    assert "pg-s3cret" in settings.pg_dsn


def test_unreachable_elasticsearch_message_hides_the_password() -> None:
    from boeflow.index.client import SearchBackendError, check_reachable, get_client

    settings = Settings(es_url="http://elastic:es-s3cret@127.0.0.1:9")  # nothing listens
    with pytest.raises(SearchBackendError) as caught:
        check_reachable(get_client(settings), settings)
    assert "s3cret" not in str(caught.value)
    assert "***@127.0.0.1:9" in str(caught.value)
