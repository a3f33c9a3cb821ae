"""Elasticsearch layout: index templates, versioned indices behind aliases.

The same mapping is used by tests (integ-test distribution) and production, so analysis uses
only server-core components: the standard tokenizer, ``lowercase`` and a ``stop`` filter with
Spanish stopwords. Accent folding and Snowball Spanish stemming are done in our code
(``*_folded`` and ``*_stem`` fields, see ``boeflow.core.textnorm``). The vector dimension comes
from the embedding model; the vector index type, shards and replicas from settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

VectorIndexType = Literal["hnsw", "int8_hnsw", "bbq_hnsw"]
DOCUMENTS = "boe-documents"
CHUNKS = "boe-chunks"
DIGESTS = "boe-digests"
ALIASES = (DOCUMENTS, CHUNKS, DIGESTS)
# The version of each index layout: bumped when a mapping changes in a way Elasticsearch cannot
# apply in place. ``boeflow es setup`` then creates ``<alias>-v<N>``, copies the older index's
# records into it (``boeflow.index.client.upgrade_index``) and moves the alias.
# documents v2: ``summary_va`` became the summary's structure (it was the Valencian resumen).
INDEX_VERSIONS: dict[str, int] = {DOCUMENTS: 2, CHUNKS: 1, DIGESTS: 1}

ANALYSIS: dict[str, Any] = {
    "filter": {"boe_spanish_stop": {"type": "stop", "stopwords": "_spanish_"}},
    "analyzer": {
        "boe_spanish": {"type": "custom", "tokenizer": "standard",
                        "filter": ["lowercase", "boe_spanish_stop"]},
    },
}

_TEXT: dict[str, Any] = {"type": "text", "analyzer": "boe_spanish"}
_TEXT_KW: dict[str, Any] = {**_TEXT, "fields": {"keyword": {"type": "keyword",
                                                            "ignore_above": 512}}}
_KW: dict[str, Any] = {"type": "keyword"}
_DATE: dict[str, Any] = {"type": "date", "format": "strict_date_optional_time||yyyy-MM-dd"}

# Fields shared by documents and chunks, for filters and display.
_DOC_FIELDS: dict[str, Any] = {
    "doc_id": _KW,
    "title": _TEXT,
    "title_folded": _TEXT,
    "title_stem": _TEXT,
    "rango": _KW,
    "department": _TEXT_KW,
    "section": _KW,
    "published": _DATE,
    "materias": _KW,
    "url_pdf": {"type": "keyword", "index": False},
    "eli": _KW,
    "smoke": {"type": "boolean"},
    "indexed_at": _DATE,
}


# A document's links as doc values, read by the search without loading the record's source
# (which holds the whole text): "relation<TAB>BOE id<TAB>text", forward links in
# ``link_refs`` (written with the record), inverse ones in ``link_from`` (by the links refresh).
LINK_FIELDS = ("link_refs", "link_from")
_LINK_KEY: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": True}
INVERSE_RELATION = {"corrige": "corregido_por", "modifica": "modificado_por",
                    "deroga": "derogado_por", "cita": "citado_por"}
SHOWN_RELATIONS = ("corrige", "modifica", "deroga")  # forward links shown with a result


def link_key(relation: str, target_id: str, text: str) -> str:
    return f"{relation}\t{target_id}\t{' '.join(text.split())[:300]}"


def link_from_key(key: str) -> dict[str, str]:
    relation, target_id, text = [*key.split("\t", 2), "", ""][:3]
    return {"relation": relation, "target_id": target_id, "text": text}


def index_version(alias: str) -> int:
    """The current layout version of ``alias`` (optionally prefixed)."""
    for base, version in INDEX_VERSIONS.items():
        if alias.endswith(base):
            return version
    raise ValueError(f"not a boeflow index alias: {alias!r}")


def index_name(alias: str, version: int | None = None) -> str:
    return f"{alias}-v{index_version(alias) if version is None else version}"


@dataclass(frozen=True)
class IndexNames:
    """Alias names, optionally prefixed (tests use a prefix to keep their own indices)."""

    prefix: str = ""

    @property
    def documents(self) -> str:
        return f"{self.prefix}{DOCUMENTS}"

    @property
    def chunks(self) -> str:
        return f"{self.prefix}{CHUNKS}"

    @property
    def digests(self) -> str:
        return f"{self.prefix}{DIGESTS}"

    def all(self) -> tuple[str, str, str]:
        return (self.documents, self.chunks, self.digests)


def vector_index_options(kind: VectorIndexType) -> dict[str, Any]:
    """``index_options`` of the chunk vectors. ``bbq_hnsw`` keeps the float vectors on disk
    and rescores an oversampled candidate list with them (ES 9 default oversample 3)."""
    if kind == "bbq_hnsw":
        return {"type": kind, "rescore_vector": {"oversample": 3.0}}
    return {"type": kind}


def chunks_mapping(dims: int, vector_index: VectorIndexType = "int8_hnsw") -> dict[str, Any]:
    return {
        "dynamic": "strict",
        "properties": {
            **_DOC_FIELDS,
            "chunk_id": _KW,
            "kind": _KW,
            "path": _KW,
            "path_text": _TEXT,
            "heading": _TEXT,
            "heading_folded": _TEXT,
            "heading_stem": _TEXT,
            "text": _TEXT,
            "text_folded": _TEXT,
            "text_stem": _TEXT,
            "bare_text": {"type": "text", "index": False},
            "n_tokens": {"type": "integer"},
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "overlap_chars": {"type": "integer"},
            "model": _KW,
            "vector": {"type": "dense_vector", "dims": dims, "index": True,
                       "similarity": "cosine",
                       "index_options": vector_index_options(vector_index)},
        },
    }


def documents_mapping() -> dict[str, Any]:
    link = {"properties": {"target_id": _KW, "relation": _KW, "direction": _KW, "code": _KW,
                           "word": _KW, "text": {"type": "text", "index": False}}}
    return {
        "dynamic": "strict",
        "properties": {
            **_DOC_FIELDS,
            "disposition_date": _DATE,
            "official_number": _KW,
            "alertas": _KW,
            "references": link,
            "linked_from": {"properties": {"source_id": _KW, "relation": _KW,
                                           "source_title": {"type": "text", "index": False}}},
            "link_refs": _LINK_KEY,
            "link_from": _LINK_KEY,
            # Issue 22: `boeflow links` of the item (blocks before/after), added in place.
            "legal_links": {"type": "object", "enabled": False},
            "text": _TEXT,
            "text_folded": _TEXT,
            "n_chunks": {"type": "integer"},
            "n_units": {"type": "integer"},
            "content_hash": _KW,
            "source_hash": _KW,
            "pipeline_key": _KW,
            "source_format": _KW,
            "language": _KW,
            "url_xml": {"type": "keyword", "index": False},
            # ParsedDocument.warnings: anomalies repaired while parsing (links dropped as
            # unsafe among them), listed as incidencias of the item in the digest.
            "parse_warnings": {"type": "keyword", "index": False},
            # Filled by the enrich/review stages (boeflow.enrich.day.enrichment_fields):
            # summary and summary_va share one structure; summary_va is searchable.
            "summary": {"type": "object", "enabled": False},
            "summary_text": _TEXT,
            "summary_va": {"properties": {
                "resumen": _TEXT, "puntos_clave": _TEXT, "a_quien_afecta": _TEXT,
                "plazos_y_fechas": _TEXT, "entrada_en_vigor": _TEXT,
                "normas_afectadas": _TEXT}},
            "summary_va_review": {"type": "object", "enabled": False},
            "title_va": _TEXT,
            "review_status": _KW,
            "needs_attention": {"type": "boolean"},
            "review_reasons": _KW,
            "review_facts": {"type": "object", "enabled": False},  # anchored facts (issue 20)
            "enrichment": {"type": "object", "enabled": False},
            # Set by the indexer when the text changed since it was enriched; enrich clears it.
            "enrichment_stale": {"type": "boolean"},
        },
    }


def digests_mapping() -> dict[str, Any]:
    """``boe-digests``: one record per published day (``kind: digest``) plus one per item
    (``kind: item``, id ``<date>:<BOE id>``), so Kibana can list digests and what they held."""
    return {
        "dynamic": "strict",
        "properties": {
            "digest_id": _KW,
            "date": _DATE,
            "language": _KW,
            "status": _KW,
            "title": _TEXT,
            "body": _TEXT,
            "items": _KW,
            "approved_by": _KW,
            "approved_at": _DATE,
            "smoke": {"type": "boolean"},
            "created_at": _DATE,
            # Issue 10: the published digest and its items.
            "kind": _KW,
            "version": {"type": "integer"},
            "decision": _KW,
            "note": _TEXT,
            "published_at": _DATE,
            "paths": {"type": "object", "enabled": False},
            "n_items": {"type": "integer"},
            "n_summarised": {"type": "integer"},
            "n_needs_attention": {"type": "integer"},
            "n_incidencias": {"type": "integer"},
            "n_excluded": {"type": "integer"},
            "excluded": _KW,
            "boe_id": _KW,
            "section": _KW,
            "department": _TEXT_KW,
            "rango": _KW,
            "summary_text": _TEXT,
            "summary_va": _TEXT,
            "title_va": _TEXT,
            "review_status": _KW,
            "review_reasons": _KW,
            "edited_by": _KW,
            "reviewer_note": _TEXT,
            "url": {"type": "keyword", "index": False},
        },
    }


def templates(dims: int, names: IndexNames | None = None, *, shards: int = 1,
              replicas: int = 0, vector_index: VectorIndexType = "int8_hnsw",
              ) -> dict[str, dict[str, Any]]:
    """Composable index templates, one per alias (name → body)."""
    names = names or IndexNames()
    settings = {"number_of_shards": shards, "number_of_replicas": replicas,
                "analysis": ANALYSIS}
    mappings = {names.documents: documents_mapping(),
                names.chunks: chunks_mapping(dims, vector_index),
                names.digests: digests_mapping()}
    return {
        f"{alias}-template": {
            "index_patterns": [f"{alias}-v*"],
            "priority": 200 + len(names.prefix),  # a prefixed pattern is more specific
            "template": {"settings": settings, "mappings": mappings[alias]},
            "_meta": {"managed_by": "boeflow", "version": index_version(alias)},
        }
        for alias in names.all()
    }
