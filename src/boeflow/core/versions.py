"""Service versions, read from the single pin file ``versions.env`` shipped in the package."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def pinned_versions() -> dict[str, str]:
    text = resources.files("boeflow.core").joinpath("versions.env").read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        pins[key.strip()] = value.strip()
    return pins


def elastic_version() -> str:
    return pinned_versions()["ELASTIC_VERSION"]


def postgres_major() -> str:
    return pinned_versions()["POSTGRES_VERSION"]


def airflow_version() -> str:
    return pinned_versions()["AIRFLOW_VERSION"]


def python_version() -> str:
    return pinned_versions()["PYTHON_VERSION"]


def redis_version() -> str:
    return pinned_versions()["REDIS_VERSION"]
