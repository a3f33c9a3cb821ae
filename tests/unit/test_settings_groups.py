"""Settings come in groups (issue 18, point 5): every field belongs to exactly one group, the
operations fields stay out of the runtime groups and out of the application's code, each
default is defined once (the BOE client's are the fetch settings'), and the pool name of the
compose file is the code's."""

from __future__ import annotations

import json
import os
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from boeflow.airflow.pools import LLM_POOL
from boeflow.boe.http import ClientConfig
from boeflow.core.settings import GROUPS, RUNTIME_GROUPS, FetchSettings, Settings

REPO = Path(__file__).resolve().parents[2]

# Read by the local service supervision and the deployment files (boeflow_ops,
# scripts/, docker/), never by the pipeline.
OPERATIONS = {
    "state_dir", "service_user", "es_heap", "es_java_home", "es_nodes", "pg_airflow_database",
    "redis_host", "redis_port", "redis_password", "airflow_host", "airflow_port",
    "airflow_api_workers", "airflow_worker_concurrency", "airflow_workers",
    "airflow_llm_pool_slots", "airflow_admin_user", "airflow_dags_dir", "airflow_plugins_dir",
    "services_allow_non_loopback",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("BOEFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray ./boeflow.toml


def test_every_field_belongs_to_exactly_one_group() -> None:
    groups = Settings.groups()
    assert list(groups) == list(GROUPS)
    assert all(groups.values()), "an empty group"
    owners: dict[str, list[str]] = {}
    for group, names in groups.items():
        for name in names:
            owners.setdefault(name, []).append(group)
    assert {n: g for n, g in owners.items() if len(g) > 1} == {}
    assert set(owners) == set(Settings.model_fields)
    assert all(issubclass(Settings, group) for group in GROUPS.values())


def test_no_operations_field_in_the_runtime_groups() -> None:
    groups = Settings.groups()
    assert set(groups["operations"]) == OPERATIONS
    runtime = {name for group in RUNTIME_GROUPS for name in groups[group]}
    assert "operations" not in RUNTIME_GROUPS
    assert runtime & OPERATIONS == set()


def test_the_application_reads_no_operations_field() -> None:
    """Only boeflow_ops (and the settings module's own derived properties) use them."""
    pattern = re.compile(r"\.(" + "|".join(sorted(OPERATIONS)) + r")\b")
    settings_module = REPO / "src" / "boeflow" / "core" / "settings.py"
    found = []
    for root in ("src/boeflow", "dags", "plugins"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path == settings_module:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []


def test_flat_names_keywords_and_environment_keep_working(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOEFLOW_PARSE_MAX_DEPTH", "64")
    monkeypatch.setenv("BOEFLOW_REDIS_PORT", "6390")
    settings = Settings(boe_rate_limit=0, es_shards=2, digest_recipients=["a@example.org"])
    assert settings.parse_max_depth == 64
    assert settings.redis_port == 6390
    assert (settings.boe_rate_limit, settings.es_shards) == (0, 2)
    assert settings.digest_recipients == ["a@example.org"]
    # The groups' bounds and validators apply to the composed settings.
    with pytest.raises(ValidationError):
        Settings(parse_max_depth=1)
    with pytest.raises(ValidationError):
        Settings(digest_site_url="https://evil.example")
    smoke = Settings(profile="smoke", smoke_models_dir=Path("/m"))
    assert smoke.embed_model == str(Path("/m/embedder"))
    assert smoke.translate_backend == "apertium"


def test_the_client_config_defaults_are_the_fetch_settings_defaults() -> None:
    assert ClientConfig() == ClientConfig.from_settings(Settings())
    for field in fields(ClientConfig):
        name = f"boe_{field.name}"
        assert name in FetchSettings.model_fields, name
        assert field.default == FetchSettings.model_fields[name].default, name
    assert ClientConfig.from_settings(Settings(), base_url="http://127.0.0.1:1").base_url \
        == "http://127.0.0.1:1"


def test_config_show_filters_by_group() -> None:
    from typer.testing import CliRunner

    from boeflow.cli import app
    from boeflow.core.settings import get_settings

    get_settings.cache_clear()
    try:
        every = json.loads(CliRunner().invoke(app, ["config", "show"]).stdout)
        parse = CliRunner().invoke(app, ["config", "show", "--group", "parse", "-g", "airflow"])
        unknown = CliRunner().invoke(app, ["config", "show", "--group", "nope"])
        listed = CliRunner().invoke(app, ["config", "groups"])
    finally:
        get_settings.cache_clear()
    assert set(every) == set(Settings.model_fields)
    assert parse.exit_code == 0, parse.output
    groups = Settings.groups()
    assert list(json.loads(parse.stdout)) == groups["parse"] + groups["airflow"]
    assert unknown.exit_code != 0
    assert json.loads(listed.stdout) == groups


def test_the_compose_file_creates_the_pool_the_dags_use() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert re.findall(r"airflow pools set (\S+)", script) == [LLM_POOL]
    common = compose["x-airflow-common"]["environment"]
    assert "BOEFLOW_AIRFLOW_LLM_POOL_SLOTS" in common


def test_an_installed_wheel_takes_no_path_from_beside_site_packages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An installed package (``.../site-packages/boeflow``) reads its migrations and samples
    from its own package data, and looks for Airflow's folders in the working directory,
    never in the directories next to ``site-packages`` that happen to share a name."""
    from boeflow.core import paths

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "boeflow").mkdir(parents=True)
    (site.parent / "sql").mkdir()  # a decoy where parents[1] of the package would point
    (site.parent / "pyproject.toml").write_text("", encoding="utf-8")
    deployment = tmp_path / "deployment"
    (deployment / "sql").mkdir(parents=True)
    monkeypatch.setattr(paths.resources, "files", lambda package: site / package)
    monkeypatch.chdir(deployment)
    assert paths.checkout_dir() is None
    assert paths.repo_dir("dags") == deployment / "dags"
    settings = Settings()
    assert settings.sql_dir == site / "boeflow" / "_shipped" / "sql"
    assert settings.samples_dir == site / "boeflow" / "_shipped" / "samples" / "boe"
    assert settings.airflow_dags_dir == deployment / "dags"
    assert settings.airflow_plugins_dir == deployment / "plugins"


def test_a_checkout_finds_its_own_directories() -> None:
    from boeflow.core import paths

    checkout = paths.checkout_dir()
    assert checkout is not None and (checkout / "src" / "boeflow").is_dir()
    settings = Settings()
    assert settings.airflow_dags_dir == checkout / "dags"
    # The package data links to the repository's own top-level directories (no copies).
    assert settings.sql_dir.resolve() == checkout / "sql"
    assert settings.samples_dir.resolve() == checkout / "samples" / "boe"


def test_every_field_is_described_here_and_in_the_docs() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    for group, names in Settings.groups().items():
        assert f"## {group} ({len(names)})" in page, group
        assert [n for n in names if f"| `{n}` |" not in page] == [], group
