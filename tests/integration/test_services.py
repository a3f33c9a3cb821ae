"""The services are real: Elasticsearch (pinned version, kNN over dense_vector) and
PostgreSQL (boeflow role), started by `boeflow services start`."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from elasticsearch import Elasticsearch

from boeflow.core.settings import Settings
from boeflow.core.versions import elastic_version
from boeflow.models.loading import embedding_dimension, load_embedder
from boeflow_ops.services.common import free_port, read_pid
from boeflow_ops.services.elasticsearch import EsLayout
from tests.support.cli import run_boeflow

pytestmark = pytest.mark.integration



def test_elasticsearch_runs_the_pinned_version(live_settings: Settings) -> None:
    # The integ-test distribution has no rest-root module, so `GET /` answers 405;
    # the node info API reports the version in every distribution.
    nodes = httpx.get(f"{live_settings.es_url}/_nodes/_local", timeout=10).json()
    versions = {node["version"] for node in nodes["nodes"].values()}
    assert versions == {elastic_version()}
    client = Elasticsearch(live_settings.es_url)
    assert client.cluster.health()["status"] in ("green", "yellow")


def test_knn_over_dense_vector_with_the_smoke_embedder(
    live_settings: Settings, smoke_settings: Settings
) -> None:
    dims = embedding_dimension(smoke_settings)  # read from the model's config
    embedder = load_embedder(smoke_settings)
    assert embedder.get_embedding_dimension() == dims
    texts = [
        "Artículo 14. Los españoles son iguales ante la ley, sin que pueda prevalecer "
        "discriminación alguna por razón de nacimiento, raza, sexo, religión u opinión.",
        "Se aprueban las bases reguladoras de las ayudas para la reparación de daños "
        "causados por la DANA en la Comunitat Valenciana.",
        "Anuncio de formalización de contratos de servicios de retirada de lodos.",
    ]
    vectors = embedder.encode(texts, normalize_embeddings=True)
    client = Elasticsearch(live_settings.es_url)
    index = "boeflow-test-foundation-knn"
    client.indices.delete(index=index, ignore_unavailable=True)
    client.indices.create(index=index, mappings={"properties": {
        "text": {"type": "text"},
        "vector": {"type": "dense_vector", "dims": dims, "similarity": "cosine",
                   "index": True, "index_options": {"type": "int8_hnsw"}},
    }})
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        client.index(index=index, id=str(i), document={"text": text, "vector": vector.tolist()})
    client.indices.refresh(index=index)
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["vector"]["dims"] == dims
    for i, vector in enumerate(vectors):
        result = client.search(index=index, knn={"field": "vector", "query_vector": vector.tolist(),
                                                 "k": 3, "num_candidates": 10})
        assert result["hits"]["hits"][0]["_id"] == str(i)
    client.indices.delete(index=index)


def test_postgres_accepts_the_boeflow_role(live_settings: Settings) -> None:
    with psycopg.connect(live_settings.pg_dsn, connect_timeout=5) as conn:
        user, database = conn.execute("SELECT current_user, current_database()").fetchone()  # type: ignore[misc]
    assert (user, database) == ("boeflow", "boeflow")


def test_start_twice_is_a_no_op(live_settings: Settings) -> None:
    layout = EsLayout.from_settings(live_settings)
    pid_before = read_pid(layout.pidfile)
    assert pid_before is not None, "the test command starts Elasticsearch with this state dir"
    started = time.monotonic()
    result = run_boeflow(["services", "start", "--json"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert read_pid(layout.pidfile) == pid_before
    assert elapsed < 20, f"second start took {elapsed:.1f}s: it should only check health"
    assert '"healthy": true' in result.stdout


@pytest.fixture()
def occupied_port() -> Iterator[int]:
    """A loopback port held by a plain TCP listener that is not a boeflow service."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BOEFLOW_") and k not in ("ES_JAVA_HOME", "JAVA_HOME")}
    env["BOEFLOW_STATE_DIR"] = str(tmp_path / "state")
    env.update(extra)
    return env


def _assert_one_clear_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert expected in error_lines[0], result.stderr


def test_port_taken_gives_one_clear_error(tmp_path: Path, occupied_port: int) -> None:
    env = _isolated_env(tmp_path, BOEFLOW_ES_URL=f"http://127.0.0.1:{occupied_port}")
    result = run_boeflow(["services", "start", "--only", "elasticsearch"], env=env)
    _assert_one_clear_error(result, f"port {occupied_port} on 127.0.0.1 is already in use")

    env = _isolated_env(tmp_path, BOEFLOW_PG_PORT=str(occupied_port))
    result = run_boeflow(["services", "start", "--only", "postgresql"], env=env)
    _assert_one_clear_error(result, f"port {occupied_port} on 127.0.0.1 is already in use")


def test_missing_jdk_gives_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "no-jvms"
    empty.mkdir()
    env = _isolated_env(tmp_path, BOEFLOW_ES_URL=f"http://127.0.0.1:{free_port()}",
                        BOEFLOW_JVM_DIRS=str(empty))
    result = run_boeflow(["services", "start", "--only", "elasticsearch"], env=env)
    _assert_one_clear_error(result, f"Elasticsearch {elastic_version()} needs a JDK 21+")


def test_too_old_jdk_is_named(tmp_path: Path) -> None:
    jdk17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    if not (jdk17 / "bin" / "java").exists():
        pytest.skip("no JDK 17 on this machine to show the version check")
    only17 = tmp_path / "jvms"
    only17.mkdir()
    (only17 / "jdk17").symlink_to(jdk17)  # symlinks are skipped in scans: use ES_JAVA_HOME
    env = _isolated_env(tmp_path, BOEFLOW_ES_URL=f"http://127.0.0.1:{free_port()}",
                        BOEFLOW_JVM_DIRS=str(tmp_path / "none"), ES_JAVA_HOME=str(jdk17))
    result = run_boeflow(["services", "start", "--only", "elasticsearch"], env=env)
    _assert_one_clear_error(result, "(Java 17)")


@pytest.mark.parametrize(("service", "extra", "expected"), [
    ("postgresql", {"BOEFLOW_PG_HOST": "0.0.0.0"},
     "refusing to start PostgreSQL on 0.0.0.0: not a loopback address"),
    # Allowed, but with the shipped default password: still refused, naming the setting.
    ("postgresql", {"BOEFLOW_PG_HOST": "0.0.0.0", "BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK": "true"},
     "or set a non-default BOEFLOW_PG_PASSWORD to expose it"),
    ("redis", {"BOEFLOW_REDIS_HOST": "0.0.0.0"},
     "refusing to start Redis on 0.0.0.0: not a loopback address"),
    ("redis", {"BOEFLOW_REDIS_HOST": "::", "BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK": "true"},
     "or set BOEFLOW_REDIS_PASSWORD to expose it"),
    ("airflow", {"BOEFLOW_AIRFLOW_HOST": "0.0.0.0"},
     "refusing to start the Airflow api-server on 0.0.0.0: not a loopback address"),
])
def test_non_loopback_bind_is_refused(tmp_path: Path, service: str, extra: dict[str, str],
                                      expected: str) -> None:
    """Services are loopback-only by construction (issue 9): a non-loopback bind address is
    refused in one line before anything is installed or started."""
    env = _isolated_env(tmp_path, BOEFLOW_PG_PORT=str(free_port()),
                        BOEFLOW_REDIS_PORT=str(free_port()),
                        BOEFLOW_AIRFLOW_PORT=str(free_port()), **extra)
    result = run_boeflow(["services", "start", "--only", service], env=env)
    _assert_one_clear_error(result, expected)
    state = tmp_path / "state"
    assert not (state / "postgres").exists() and not (state / "redis").exists()
    assert not (state / "airflow").exists()
