"""An index created by an older boeflow is upgraded in place by `boeflow es setup` (and by
the first `index` run): ``boe-documents-v1`` (``summary_va`` was the Valencian resumen as
text) is copied into ``boe-documents-v2`` (``summary_va`` is the summary's structure), the
alias moves atomically, nothing is lost and nothing is deleted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client, names_for, setup_indices, upgrade_index
from boeflow.index.mapping import ANALYSIS, IndexNames, documents_mapping, index_name, templates

pytestmark = pytest.mark.integration

PREFIX = "it-upgrade-"
DIMS = 16
RECORDS = [
    {"doc_id": f"BOE-A-2024-{n}", "title": f"Resolución {n}", "section": "1",
     "summary_text": f"Resumen {n}.", "summary_va": f"Resum {n} en valencià.",
     "review_status": "auto_checked"}
    for n in range(1, 1201)  # more than one scroll page and one bulk chunk
] + [{"doc_id": "BOE-A-2024-9999", "title": "Sin enriquecer", "section": "3"}]


def _v1_documents_mapping() -> dict[str, Any]:
    """The documents mapping as boeflow wrote it before v2."""
    properties = dict(documents_mapping()["properties"])
    properties["summary_va"] = {"type": "text", "analyzer": "boe_spanish"}
    del properties["summary_va_review"]
    return {"dynamic": "strict", "properties": properties}


@pytest.fixture()
def settings(live_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(es_url=live_settings.es_url, es_index_prefix=PREFIX,
                        data_dir=tmp_path / "data")
    with get_client(settings) as client:
        drop_indices(client, IndexNames(PREFIX))
        yield settings
        drop_indices(client, IndexNames(PREFIX))


def _old_cluster(client: Elasticsearch, names: IndexNames) -> str:
    old = index_name(names.documents, 1)
    client.indices.create(index=old, settings={"number_of_shards": 1, "number_of_replicas": 0,
                                               "analysis": ANALYSIS},
                          mappings=_v1_documents_mapping())
    client.indices.put_alias(index=old, name=names.documents)
    from elasticsearch.helpers import bulk

    bulk(client, ({"_index": names.documents, "_id": r["doc_id"], "_source": r}
                  for r in RECORDS), refresh=True)
    return old


def test_v1_documents_are_copied_to_v2_and_the_alias_moves(settings: Settings) -> None:
    names = names_for(settings)
    with get_client(settings) as client:
        old = _old_cluster(client, names)
        result = setup_indices(client, settings, DIMS)
        new = index_name(names.documents)
        assert new.endswith("-v2")
        assert result.upgraded == {old: new}
        assert list(client.indices.get_alias(name=names.documents)) == [new]
        assert client.indices.exists(index=old)  # kept: nothing is deleted
        assert client.count(index=names.documents)["count"] == len(RECORDS)
        one = client.get(index=names.documents, id="BOE-A-2024-7")["_source"]
        assert one["summary_va"] == {"resumen": "Resum 7 en valencià."}
        assert one["summary_text"] == "Resumen 7."
        bare = client.get(index=names.documents, id="BOE-A-2024-9999")["_source"]
        assert "summary_va" not in bare
        # The new structure is searchable and the enrich stage can now store it.
        client.update(index=names.documents, id="BOE-A-2024-7", refresh=True, doc={
            "summary_va": {"resumen": "Resum nou.", "puntos_clave": ["Primer punt"],
                           "a_quien_afecta": "Ajuntaments"},
            "summary_va_review": {"resumen": {"needs_attention": False, "reasons": []}}})
        hits = client.search(index=names.documents,
                             query={"match": {"summary_va.a_quien_afecta": "ajuntaments"}})
        assert [h["_id"] for h in hits["hits"]["hits"]] == ["BOE-A-2024-7"]
        hits = client.search(index=names.documents,
                             query={"match": {"summary_va.resumen": "valencià"}}, size=0)
        assert hits["hits"]["total"]["value"] == len(RECORDS) - 2
        # A second setup is a no-op.
        again = setup_indices(client, settings, DIMS)
        assert again.upgraded == {} and new in again.existing


def test_parallel_setups_upgrade_once_and_lose_nothing(settings: Settings) -> None:
    """The daily DAG's mapped index tasks all call setup; only one copies, the others wait
    for the alias to move before they write."""
    names = names_for(settings)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with get_client(settings) as own:
                results.append(setup_indices(own, settings, DIMS))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with get_client(settings) as client:
        old = _old_cluster(client, names)
        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        assert sorted(len(r.upgraded) for r in results) == [0, 0, 0, 1]
        new = index_name(names.documents)
        assert list(client.indices.get_alias(name=names.documents)) == [new]
        client.indices.refresh(index=new)
        assert client.count(index=new)["count"] == len(RECORDS)
        assert client.count(index=old)["count"] == len(RECORDS)


def test_a_chunk_copy_keeps_its_vector(settings: Settings) -> None:
    """Elasticsearch leaves vectors out of ``_source``; a copy that forgot them would
    silently leave chunks without embeddings."""
    names = names_for(settings)
    with get_client(settings) as client:
        setup_indices(client, settings, DIMS)
        new = index_name(names.chunks)
        old = index_name(names.chunks, 0)  # stands for an older chunk layout
        template = templates(DIMS, names)[f"{names.chunks}-template"]["template"]
        client.indices.create(index=old, settings=template["settings"],
                              mappings=template["mappings"])
        client.indices.update_aliases(actions=[
            {"remove": {"index": new, "alias": names.chunks}},
            {"add": {"index": old, "alias": names.chunks}}])
        vector = [round(0.1 * (i + 1), 3) for i in range(DIMS)]
        client.index(index=old, id="BOE-A-2024-1-c0", refresh=True, document={
            "chunk_id": "BOE-A-2024-1-c0", "doc_id": "BOE-A-2024-1", "text": "Artículo 1.",
            "vector": vector})
        assert upgrade_index(client, names.chunks, old, 0, new) == 1
        hit = client.search(index=names.chunks, source={"exclude_vectors": False},
                            query={"ids": {"values": ["BOE-A-2024-1-c0"]}})["hits"]["hits"][0]
        assert hit["_index"] == new
        assert hit["_source"]["vector"] == pytest.approx(vector, abs=1e-6)
        knn = client.search(index=names.chunks, knn={"field": "vector", "query_vector": vector,
                                                     "k": 1, "num_candidates": 10})
        assert [h["_id"] for h in knn["hits"]["hits"]] == ["BOE-A-2024-1-c0"]
