"""docker/compose.yaml passes a real compose loader (Debian's docker-compose, installed by
scripts/bootstrap.sh) and agrees with the code: image tags with src/boeflow/core/versions.env,
BOEFLOW_* names with the Settings fields, service hosts and ports with the URLs the code
is given, Airflow classes with the installed packages."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from boeflow.core.settings import Settings
from boeflow.core.versions import (
    airflow_version,
    elastic_version,
    pinned_versions,
    postgres_major,
    python_version,
    redis_version,
)

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-init"}
REQUIRED = AIRFLOW_SERVICES | {"redis", "postgres", "elasticsearch", "kibana", "kibana-setup"}
GPU = {"alia", "aitana", "tei"}


def _compose(*args: str, password: str | None = "pw-for-test") -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: scripts/bootstrap.sh installs the Debian "
                    "package", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOEFLOW_", "AIRFLOW"))}
    if password is not None:
        env["BOEFLOW_PG_PASSWORD"] = password
    return subprocess.run([binary, "-f", str(COMPOSE), *args], capture_output=True, text=True,
                          env=env, cwd=DOCKER, timeout=120, check=False)


@cache
def resolved(profile: str | None = None) -> dict[str, Any]:
    args = ["--profile", profile] if profile else []
    result = _compose(*args, "config")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr  # e.g. an unset variable
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def _services(profile: str | None = None) -> dict[str, dict[str, Any]]:
    return dict(resolved(profile)["services"])


def test_the_loader_accepts_the_file_with_and_without_the_gpu_profile() -> None:
    services = _services("gpu")
    assert {n for n, s in services.items() if not s.get("profiles")} == REQUIRED
    assert {n for n, s in services.items() if s.get("profiles")} == GPU
    assert all(services[n]["profiles"] == ["gpu"] for n in GPU)
    assert set(_services()) >= REQUIRED


def test_the_database_password_is_required() -> None:
    result = _compose("config", password=None)
    assert result.returncode != 0
    assert "set BOEFLOW_PG_PASSWORD" in result.stderr


def test_layout_follows_airflows_official_compose() -> None:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "x-airflow-common" in raw
    services = _services()
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-worker"]["command"] == "celery worker"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == \
            "service_completed_successfully"
    # Scale-out: workers have no fixed container name and no published port.
    assert "container_name" not in services["airflow-worker"]
    assert "ports" not in services["airflow-worker"]


def test_every_service_has_a_healthcheck_and_binds_published_ports_to_loopback() -> None:
    for name, service in _services("gpu").items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert _port(port)[0] == "127.0.0.1", (name, port)


def _port(entry: str | dict[str, Any]) -> tuple[str, int]:
    """(host ip, container port) of a published port, long or short syntax."""
    if isinstance(entry, dict):
        return str(entry.get("host_ip", "")), int(entry["target"])
    parts = entry.split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else ""), int(parts[-1])


def _mount(entry: str | dict[str, Any]) -> tuple[str, str]:
    """(source, target) of a volume, long or short syntax."""
    if isinstance(entry, dict):
        return str(entry.get("source", "")), str(entry["target"])
    source, target = entry.split(":")[:2]
    return source, target


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def test_image_tags_follow_versions_env() -> None:
    services = _services("gpu")
    for name in ("elasticsearch", "kibana", "kibana-setup"):
        assert _tag(services[name]["image"]) == elastic_version(), name
    assert services["elasticsearch"]["image"].startswith("docker.elastic.co/elasticsearch/")
    assert services["kibana"]["image"].startswith("docker.elastic.co/kibana/")
    assert services["postgres"]["image"] == f"postgres:{postgres_major()}"
    assert services["redis"]["image"] == f"redis:{redis_version()}"
    pins = pinned_versions()
    assert _tag(services["alia"]["image"]) == _tag(services["aitana"]["image"]) == \
        pins["VLLM_VERSION"]
    assert _tag(services["tei"]["image"]) == pins["TEI_VERSION"]
    for name in AIRFLOW_SERVICES:
        args = services[name]["build"]["args"]
        assert args == {"AIRFLOW_VERSION": airflow_version(), "PYTHON_VERSION": python_version()}
        assert _tag(services[name]["image"]) == airflow_version()


def test_docker_env_is_the_versions_file() -> None:
    env = DOCKER / ".env"
    assert env.is_symlink()
    assert env.resolve() == (REPO / "src" / "boeflow" / "core" / "versions.env").resolve()


def test_local_redis_is_the_pinned_minor() -> None:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"v=(\d+\.\d+)\.", out)
    assert match and match.group(1) == redis_version(), out


def test_airflow_and_python_pins_agree_with_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert f"apache-airflow=={airflow_version()}" in project["dependencies"]
    assert project["requires-python"].startswith(f">={python_version()}")
    import airflow

    assert airflow.__version__ == airflow_version()


def test_dockerfile_builds_from_the_official_image_with_the_lock() -> None:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:slim-${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in text
    assert "-r /opt/boeflow/requirements/lock.txt" in text and "pip check" in text
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (REPO / path).exists(), path


def test_boeflow_variables_are_settings_and_point_at_compose_services() -> None:
    services = _services("gpu")
    fields = set(Settings.model_fields)
    env: dict[str, str] = {}
    for name in AIRFLOW_SERVICES:
        for key, value in services[name]["environment"].items():
            if key.startswith("BOEFLOW_"):
                assert key.removeprefix("BOEFLOW_").lower() in fields, f"{name}: {key}"
                env[key] = "" if value is None else str(value)
    env["BOEFLOW_EMBED_REMOTE_URL"] = "http://tei:80"  # what the gpu profile asks to set
    settings = Settings(**{k.removeprefix("BOEFLOW_").lower(): v for k, v in env.items()
                           if v != ""})
    # Each URL names a service of the file and the port that service listens on.
    es = urlsplit(settings.es_url)
    assert es.hostname == "elasticsearch" and es.port == 9200
    assert any(_port(p)[1] == 9200 for p in services["elasticsearch"]["ports"])
    assert settings.pg_host == "postgres" and settings.pg_port == 5432
    assert services["postgres"]["environment"]["POSTGRES_USER"] == settings.pg_user
    assert services["postgres"]["environment"]["POSTGRES_DB"] == settings.pg_airflow_database
    init_sql = (DOCKER / "postgres" / "init.sql").read_text(encoding="utf-8")
    assert f"CREATE DATABASE {settings.pg_database} OWNER {settings.pg_user}" in init_sql
    llm = urlsplit(settings.gen_http_url)
    assert llm.hostname == "alia" and str(llm.port) in services["alia"]["command"]
    assert "SINAI/ALIA-legal-administrative-7B-Instruct" in services["alia"]["command"]
    assert "gplsi/Aitana-2B-SI-Instruct-Aligned" in services["aitana"]["command"]
    tei = urlsplit(settings.embed_remote_url or "")
    assert tei.hostname == "tei" and str(tei.port) in services["tei"]["command"]
    assert "BAAI/bge-m3" in services["tei"]["command"]
    # The Airflow database URL is the one the code derives from the same settings.
    airflow_env = services["airflow-scheduler"]["environment"]
    assert airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == settings.airflow_sql_alchemy_conn
    assert airflow_env["AIRFLOW__CELERY__RESULT_BACKEND"] == settings.celery_result_backend


def test_airflow_classes_named_in_the_file_exist() -> None:
    environment = _services()["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__AUTH_MANAGER"):
        module, _, name = environment[key].rpartition(".")
        assert hasattr(importlib.import_module(module), name), environment[key]


def test_kibana_setup_imports_the_shipped_objects() -> None:
    setup = _services()["kibana-setup"]
    source = next(s for s, t in map(_mount, setup["volumes"]) if t == "/boeflow/kibana")
    assert Path(source) == DOCKER / "kibana"
    assert (Path(source) / "boeflow.ndjson").is_file()
    assert "/boeflow/kibana/boeflow.ndjson" in " ".join(setup["command"])
    assert "_import" in " ".join(setup["command"])
