"""Issue 9 against the real Elasticsearch: nothing stale after an interrupted first index,
concurrent `index` runs, Elasticsearch vanishing mid-run or never answering, and the
managed service's loopback-only / named-deletes guards. Each test failed on the main branch
before the fix (see the issue's closing note)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import ApiError, Elasticsearch

from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client, names_for, setup_indices
from boeflow.index.embed import build_embedder
from boeflow.index.files import make_chunker
from boeflow.index.mapping import IndexNames
from boeflow.index.writer import existing_chunk_ids, index_documents
from boeflow.parse import parse_file
from boeflow_ops.services import ServiceError
from boeflow_ops.services import elasticsearch as es
from tests.conftest import DOCUMENTS
from tests.support.cli import run_boeflow

pytestmark = pytest.mark.integration


def _settings(live_settings: Settings, smoke_models_dir: Path, data_dir: Path,
              prefix: str) -> Settings:
    return Settings(profile="smoke", smoke_models_dir=smoke_models_dir,
                    es_url=live_settings.es_url, es_index_prefix=prefix, data_dir=data_dir)


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "BOEFLOW_PROFILE": "smoke",
            "BOEFLOW_SMOKE_MODELS_DIR": str(settings.smoke_models_dir),
            "BOEFLOW_ES_URL": settings.es_url, "BOEFLOW_ES_INDEX_PREFIX": settings.es_index_prefix,
            "BOEFLOW_DATA_DIR": str(settings.data_dir), **extra}


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_stale_chunks_of_an_interrupted_first_index_are_deleted(
        live_settings: Settings, smoke_models_dir: Path, tmp_path: Path) -> None:
    """Defect 8: a run killed after the chunks were written but before the document record,
    then the document changes: the rerun must delete the old chunks (found by doc_id)."""
    settings = _settings(live_settings, smoke_models_dir, tmp_path / "data", "it-stale-")
    client = get_client(settings)
    names = names_for(settings)
    drop_indices(client, names)
    embedder = build_embedder(settings)
    setup_indices(client, settings, embedder.dimension)
    chunker = make_chunker(settings)
    original = DOCUMENTS / "BOE-A-2024-24105.xml"
    doc = parse_file(original)
    before = chunker(doc)
    report = index_documents(client, names, embedder, [(doc, before)], smoke=True)
    assert report.failed == {}
    # The kill: the chunks are in boe-chunks, the document record never got written.
    client.delete(index=names.documents, id=doc.id, refresh=True)
    # The document changes before the rerun (one sentence of Artículo 2, a real edit).
    sentence = "bajo la dependencia orgánica y funcional de la persona titular del Ministerio"
    raw = original.read_text(encoding="utf-8")
    edited = tmp_path / original.name
    edited.write_text(raw.replace(sentence, sentence.replace("orgánica y ", "")),
                      encoding="utf-8")
    changed = parse_file(edited)
    after = chunker(changed)
    assert {c.id for c in after} != {c.id for c in before}
    report = index_documents(client, names, embedder, [(changed, after)], smoke=True)
    assert report.failed == {}
    assert existing_chunk_ids(client, names, doc.id) == {c.id for c in after}
    assert client.count(index=names.chunks, query={"term": {"doc_id": doc.id}})["count"] == len(
        after)
    record = client.get(index=names.documents, id=doc.id)["_source"]
    assert record["n_chunks"] == len(after)
    drop_indices(client, names)


# Documents that link to each other (a correction, later dispositions citing the DANA law),
# so concurrent runs update the same `linked_from` records.
LINKED = ["BOE-A-2024-22928.xml", "BOE-A-2024-24097.xml", "BOE-A-2024-23620.xml",
          "BOE-A-2024-24105.xml", "BOE-A-2024-26250.xml", "BOE-A-2024-25801.xml"]


def test_concurrent_index_runs_all_succeed(live_settings: Settings, smoke_models_dir: Path,
                                           tmp_path: Path) -> None:
    """Defect 6: concurrent `boeflow index` runs used to die with ConflictError from the
    link refresh (7 of 9 rounds). Two rounds of three real concurrent runs must all exit 0
    and leave the same, complete index."""
    settings = _settings(live_settings, smoke_models_dir, tmp_path / "data", "it-concurrent-")
    client = get_client(settings)
    names = names_for(settings)
    files = [str(DOCUMENTS / name) for name in LINKED]
    for _round in range(2):
        drop_indices(client, names)
        procs = [subprocess.Popen([sys.executable, "-m", "boeflow", "index", *files],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_env(settings, BOEFLOW_DATA_DIR=str(tmp_path / f"d{n}")))
                 for n in range(3)]
        outputs = [proc.communicate(timeout=600) for proc in procs]
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
            assert "Traceback" not in err
        client.indices.refresh(index=[names.documents, names.chunks])
        assert client.count(index=names.documents)["count"] == len(LINKED)
        corrected = client.get(index=names.documents, id="BOE-A-2024-22928")["_source"]
        assert {"source_id": "BOE-A-2024-24097", "relation": "corrige"} in [
            {"source_id": link["source_id"], "relation": link["relation"]}
            for link in corrected["linked_from"]]
    drop_indices(client, names)


class _CuttableProxy:
    """A loopback TCP proxy to Elasticsearch that drops every connection (and stops
    listening) once it has forwarded ``cut_after`` bulk requests: Elasticsearch vanishing
    in the middle of a run, as a kill or a network failure looks to the client."""

    def __init__(self, target: tuple[str, int], cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.bulks = 0
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(65536):
                if watch and b"/_bulk" in data:
                    with self.lock:
                        self.bulks += 1
                        if self.bulks > self.cut_after:
                            self.close()
                            return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.cut.set()
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_elasticsearch_vanishing_mid_index_is_one_line(live_settings: Settings,
                                                      smoke_models_dir: Path,
                                                      tmp_path: Path) -> None:
    """Defect 6: Elasticsearch dropping mid-`index` printed a ConnectionError traceback."""
    settings = _settings(live_settings, smoke_models_dir, tmp_path / "data", "it-vanish-")
    client = get_client(settings)
    drop_indices(client, names_for(settings))
    host, port = live_settings.es_url.rsplit("//", 1)[1].split(":")
    proxy = _CuttableProxy((host, int(port.rstrip("/"))), cut_after=1)
    env = _env(settings, BOEFLOW_ES_URL=f"http://127.0.0.1:{proxy.port}")
    try:
        result = run_boeflow(["index", *(str(DOCUMENTS / name) for name in LINKED)], env=env)
    finally:
        proxy.close()
    assert proxy.bulks >= 2  # the run was cut in the middle, after a first bulk went through
    line = _one_clear_line(result)
    assert "Elasticsearch" in line and ("stopped answering" in line or "not reachable" in line)
    drop_indices(client, names_for(settings))


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in held:
        sock.close()
    listener.close()


def test_a_silent_elasticsearch_is_reported_within_15_seconds(
        live_settings: Settings, smoke_models_dir: Path, tmp_path: Path,
        silent_server: int) -> None:
    """Bound: a server that accepts and never answers cost 3 x 60 s before the error."""
    settings = _settings(live_settings, smoke_models_dir, tmp_path / "data", "it-silent-")
    env = _env(settings, BOEFLOW_ES_URL=f"http://127.0.0.1:{silent_server}")
    for args in (["search", "ley", "--mode", "bm25"], ["index", str(DOCUMENTS / LINKED[1])],
                 ["es", "setup"]):
        started = time.monotonic()
        result = run_boeflow(args, env=env, timeout=120)
        elapsed = time.monotonic() - started
        line = _one_clear_line(result)
        assert "did not answer" in line and "BOEFLOW_ES_REQUEST_TIMEOUT" in line, line
        assert elapsed < 20, (args, elapsed)  # 10 s timeout, no retry, + process start-up


def test_managed_elasticsearch_refuses_non_loopback_addresses(
        live_settings: Settings, tmp_path: Path) -> None:
    port = int(live_settings.es_url.rstrip("/").rsplit(":", 1)[1])
    for host in ("0.0.0.0", "192.0.2.10", "es.example.org"):  # what is refused
        settings = Settings(es_url=f"http://{host}:{port}", state_dir=tmp_path / "state")
        with pytest.raises(ServiceError, match="refusing to start Elasticsearch"):
            es.start(settings)
    assert not (tmp_path / "state").exists()  # refused before anything was installed


def test_deleting_indices_needs_their_names(live_settings: Settings) -> None:
    client = Elasticsearch(live_settings.es_url)
    client.indices.create(index="it-named-delete-v1")
    try:
        with pytest.raises(ApiError, match=r"[Ww]ildcard"):
            client.indices.delete(index="it-named-*")
        assert client.indices.exists(index="it-named-delete-v1")
    finally:
        client.indices.delete(index="it-named-delete-v1")
    assert drop_indices(client, IndexNames("it-nothing-here-")) == []
