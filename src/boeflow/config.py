"""One typed settings object for the whole of boeflow.

Sources, highest priority first: explicit arguments, ``BOEFLOW_*`` environment variables,
a TOML file (``BOEFLOW_CONFIG`` or ``./boeflow.toml``), then the defaults below, which name
the real production models. The ``smoke`` profile points every model at the tiny local
models built by ``boeflow models smoke`` so the pipeline runs offline on a laptop or in CI.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Profile = Literal["production", "smoke"]
Device = Literal["auto", "cpu", "cuda", "mps"]

PRODUCTION_EMBEDDER = "BAAI/bge-m3"
ALTERNATIVE_EMBEDDER = "littlejohn-ai/bge-m3-spa-law-qa"
PRODUCTION_SUMMARIZER = "SINAI/ALIA-legal-administrative-7B-Instruct"
PRODUCTION_TRANSLATOR = "gplsi/Aitana-2B-SI-Instruct-Aligned"

# Sub-directories of the smoke model directory, as written by boeflow.models.smoke.
SMOKE_EMBEDDER = "embedder"
SMOKE_SUMMARIZER = "summarizer"
SMOKE_TRANSLATOR = "translator"


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "boeflow"


def _default_samples_dir() -> Path:
    """The repository's copy of the recorded BOE samples (``samples/boe``)."""
    repo_root = Path(__file__).resolve().parents[2]
    candidate = repo_root / "samples" / "boe"
    return candidate if candidate.is_dir() else Path.cwd() / "samples" / "boe"


def _config_file() -> Path:
    return Path(os.environ.get("BOEFLOW_CONFIG", "boeflow.toml"))


class Settings(BaseSettings):
    """All knobs of boeflow. Every field can be set as ``BOEFLOW_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="BOEFLOW_", extra="ignore")

    profile: Profile = Field("production", description="production or smoke (tiny local models)")
    data_dir: Path = Field(default_factory=lambda: _default_home() / "data",
                           description="raw store and derived data")
    state_dir: Path = Field(default_factory=lambda: Path.cwd() / ".services",
                            description="project-local service installs, data and logs")

    samples_dir: Path = Field(default_factory=_default_samples_dir,
                              description="recorded BOE publications used by tests and the demo")

    # Services
    es_url: str = "http://127.0.0.1:9200"
    es_heap: str = "512m"
    es_java_home: Path | None = Field(None, description="JDK for Elasticsearch (21+ for 9.x)")
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "boeflow"
    pg_password: str = "boeflow"  # noqa: S105 - loopback default, override in production
    pg_database: str = "boeflow"
    service_user: str = Field("boeflow", description="unprivileged OS user running services")

    # BOE source
    boe_base_url: str = "https://www.boe.es"

    # Models: id on the Hugging Face hub or a local directory; revision pins a commit.
    embed_model: str = PRODUCTION_EMBEDDER
    embed_revision: str | None = None
    embed_max_seq_length: int = 512
    embed_batch_size: int = 16
    summarizer_model: str = PRODUCTION_SUMMARIZER
    summarizer_revision: str | None = None
    translator_model: str = PRODUCTION_TRANSLATOR
    translator_revision: str | None = None
    gen_batch_size: int = 4
    max_new_tokens: int = 512
    device: Device = "auto"
    hf_offline: bool = Field(True, description="never reach the Hugging Face hub at run time")
    smoke_models_dir: Path = Field(default_factory=lambda: _default_home() / "smoke-models")

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        if self.profile == "smoke":
            explicit = self.model_fields_set
            base = self.smoke_models_dir
            if "embed_model" not in explicit:
                self.embed_model = str(base / SMOKE_EMBEDDER)
            if "summarizer_model" not in explicit:
                self.summarizer_model = str(base / SMOKE_SUMMARIZER)
            if "translator_model" not in explicit:
                self.translator_model = str(base / SMOKE_TRANSLATOR)
        return self

    @property
    def is_smoke(self) -> bool:
        return self.profile == "smoke"

    @property
    def pg_dsn(self) -> str:
        return (f"postgresql://{self.pg_user}:{self.pg_password}@{self.pg_host}:"
                f"{self.pg_port}/{self.pg_database}")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
