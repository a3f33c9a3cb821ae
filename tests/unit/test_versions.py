"""Service versions are pinned in one place (src/boeflow/core/versions.env); the rest follows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from boeflow.core.versions import elastic_version, postgres_major

REPO = Path(__file__).resolve().parents[2]


def _pinned(requirement_name: str) -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for dep in project["project"]["dependencies"]:
        name, _, version = dep.partition("==")
        if re.sub(r"\[.*\]", "", name).lower() == requirement_name:
            return version
    raise AssertionError(f"{requirement_name} is not pinned in pyproject.toml")


def test_elasticsearch_client_major_matches_server_major() -> None:
    assert _pinned("elasticsearch").split(".")[0] == elastic_version().split(".")[0]


def test_lock_agrees_with_direct_pins() -> None:
    lock = {}
    for line in (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[name.lower().replace("_", "-")] = version.strip()
    for name in ("elasticsearch", "torch", "transformers", "sentence-transformers",
                 "apache-airflow", "spacy", "pymupdf"):
        assert lock[name] == _pinned(name), name


def test_postgres_pin_is_a_major_version() -> None:
    assert postgres_major().isdigit()
