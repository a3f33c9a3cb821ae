"""Search and Elasticsearch logic without a cluster (issue 13, ES parts of issue 9):
stemming, the BM25 query shape, link keys, vector index options, cluster node options,
bounded client settings and the loopback guard."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from boeflow.core.settings import Settings
from boeflow.core.textnorm import stem_text
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.index.client import get_client
from boeflow.index.mapping import chunks_mapping, link_from_key, link_key, templates
from boeflow.index.search import Filters, bm25_query, highlight_query
from boeflow.index.writer import chunk_source
from boeflow_ops.services import ServiceError
from boeflow_ops.services import elasticsearch as es


def test_stems_meet_inflections_with_or_without_accents() -> None:
    # Snowball Spanish (PyStemmer): plurals, verb forms and -ación nouns meet.
    assert stem_text("contratos") == stem_text("contratación") == stem_text("contratacion")
    assert stem_text("embarazadas") == stem_text("embarazo")
    assert stem_text("Artículos") == stem_text("articulo")
    assert stem_text("Contratos corregidos, 6/2024") == "contrat correg 6 2024"
    assert stem_text("") == "" and stem_text(" ¡! ") == ""
    # Derivations with a changed stem consonant stay apart: a known limit of Snowball.
    assert stem_text("corregidos") != stem_text("corrección")
    assert stem_text("inscribir") != stem_text("inscripción")


def test_bm25_query_sums_exact_folded_and_stemmed_words_and_a_title_phrase() -> None:
    query = bm25_query("Contratación de obras", Filters(rango="Orden"))["bool"]
    clauses = query["should"]
    exact, folded, stemmed, phrase = clauses
    assert exact["multi_match"]["query"] == "Contratación de obras"
    assert folded["multi_match"]["query"] == "contratacion de obras"
    assert stemmed["multi_match"]["query"] == stem_text("Contratación de obras")
    assert all(c["multi_match"]["type"] == "cross_fields" for c in (exact, folded, stemmed))
    assert all(f.split("^")[0].endswith("_stem") for f in stemmed["multi_match"]["fields"])
    assert phrase == {"match_phrase": {"title_folded": {"query": "contratacion de obras",
                                                        "boost": 3}}}
    assert query["filter"] == [{"term": {"rango": "Orden"}}]
    assert highlight_query("x")["multi_match"]["fields"] == ["text", "heading"]


def test_link_keys_round_trip() -> None:
    key = link_key("corregido_por", "BOE-A-2024-24097", "Corrección de\terrores  del RDL")
    assert link_from_key(key) == {"relation": "corregido_por", "target_id": "BOE-A-2024-24097",
                                  "text": "Corrección de errores del RDL"}
    assert link_from_key("cita\tBOE-A-1") == {"relation": "cita", "target_id": "BOE-A-1",
                                               "text": ""}


def test_vector_index_options_and_replicas_come_from_the_arguments() -> None:
    for kind in ("hnsw", "int8_hnsw", "bbq_hnsw"):
        vector = chunks_mapping(1024, kind)["properties"]["vector"]  # type: ignore[arg-type]
        assert vector["dims"] == 1024 and vector["index_options"]["type"] == kind
    bbq = chunks_mapping(1024, "bbq_hnsw")["properties"]["vector"]["index_options"]
    assert bbq["rescore_vector"]["oversample"] > 1
    body = templates(128, shards=2, replicas=1)["boe-chunks-template"]["template"]
    assert body["settings"]["number_of_shards"] == 2
    assert body["settings"]["number_of_replicas"] == 1
    stems = {"title_stem", "heading_stem", "text_stem"}
    assert stems <= set(body["mappings"]["properties"])


def test_chunk_vectors_are_sent_as_base64_big_endian_float32() -> None:
    doc = ParsedDocument(id="BOE-A-2024-1", title="Orden de prueba", text="Artículo 1. Texto.")
    chunk = Chunk(id="c1", doc_id=doc.id, kind="articulo", path=["Artículo 1"],
                  heading="Artículo 1", text="Artículo 1. Contratos.", bare_text="Contratos.",
                  n_tokens=3, start=0, end=10)
    vector = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    source = chunk_source(chunk, doc, vector, "m", smoke=True)
    decoded = np.frombuffer(base64.b64decode(source["vector"]), dtype=">f4")
    assert decoded.tolist() == [0.5, -1.25, 3.0]
    assert source["text_stem"] == stem_text(chunk.text)
    assert source["title_stem"] == stem_text(doc.title)


def test_client_requests_are_bounded_and_timeouts_not_retried() -> None:
    settings = Settings(es_url="http://127.0.0.1:9", es_request_timeout=7, es_max_retries=1)
    client = get_client(settings)
    # Per-request options of the client (the behaviour itself is tested against a silent
    # server in tests/integration/test_es_robustness.py).
    assert client._request_timeout == 7
    assert client._max_retries == 1
    assert client._retry_on_timeout is False
    defaults = Settings()
    assert defaults.es_request_timeout <= 15  # one timeout, never retried, by default


def test_cluster_nodes_get_their_own_ports_and_directories(tmp_path: Path) -> None:
    settings = Settings(es_url="http://127.0.0.1:9250", state_dir=tmp_path, es_nodes=2)
    first, second = es.node_layouts(settings)
    assert (first.port, first.transport_port, second.port, second.transport_port) == (
        9250, 9350, 9251, 9351)
    assert len({first.data, second.data}) == len({first.pidfile, second.pidfile}) == 2
    options = es._node_options(second, [first, second])
    pairs = dict(opt.split("=", 1) for opt in options[1::2])
    assert pairs["discovery.seed_hosts"] == "127.0.0.1:9350,127.0.0.1:9351"
    assert pairs["node.roles"] == "data"
    assert pairs["network.host"] == "127.0.0.1"
    assert pairs["action.destructive_requires_name"] == "true"
    single = dict(o.split("=", 1) for o in es._node_options(first, [first])[1::2])
    assert single["discovery.type"] == "single-node"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "elastic.example.org", "[::]"])
def test_non_loopback_hosts_are_refused_before_anything_starts(host: str,
                                                               tmp_path: Path) -> None:
    settings = Settings(es_url=f"http://{host}:9299", state_dir=tmp_path / "state")
    with pytest.raises(ServiceError, match="refusing to start Elasticsearch"):
        es.start(settings)
    assert not (tmp_path / "state").exists()
    allowed = settings.model_copy(update={"services_allow_non_loopback": True})
    with pytest.raises(ServiceError, match="refusing to start Elasticsearch"):
        es.start(allowed)  # the local Elasticsearch has no security to configure
