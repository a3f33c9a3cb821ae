"""Elasticsearch client construction and `boeflow es setup` (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from boeflow.config import Settings, redact_url
from boeflow.index.mapping import IndexNames, index_name, templates


class SearchBackendError(RuntimeError):
    """Elasticsearch is unreachable, an index is missing, or a request was rejected.
    The message is one clear line for the user."""


def names_for(settings: Settings) -> IndexNames:
    return IndexNames(settings.es_index_prefix)


def get_client(settings: Settings) -> Elasticsearch:
    return Elasticsearch(settings.es_url, request_timeout=60, retry_on_timeout=True,
                         max_retries=2)


def check_reachable(client: Elasticsearch, settings: Settings) -> None:
    try:
        client.cluster.health(timeout="5s")
    except (EsConnectionError, TransportError) as exc:
        raise SearchBackendError(
            f"Elasticsearch is not reachable at {redact_url(settings.es_url)} "
            f"({type(exc).__name__}); "
            "start it with `boeflow services start` or set BOEFLOW_ES_URL") from None


@dataclass
class SetupResult:
    created: list[str]
    existing: list[str]
    dims: int


def setup_indices(client: Elasticsearch, settings: Settings, dims: int) -> SetupResult:
    """Create templates, versioned indices and aliases; a no-op when all exist."""
    check_reachable(client, settings)
    names = names_for(settings)
    for name, body in templates(dims, names).items():
        client.indices.put_index_template(name=name, **body)
    created: list[str] = []
    existing: list[str] = []
    for alias in names.all():
        concrete = index_name(alias)
        if client.indices.exists(index=concrete):
            existing.append(concrete)
        else:
            try:
                client.indices.create(index=concrete)
            except ApiError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise
            created.append(concrete)
        if not client.indices.exists_alias(name=alias, index=concrete):
            client.indices.put_alias(index=concrete, name=alias)
    chunks = index_name(names.chunks)
    mapping = client.indices.get_mapping(index=chunks)
    actual = mapping[chunks]["mappings"]["properties"]["vector"]["dims"]
    if actual != dims:
        raise SearchBackendError(
            f"{chunks} holds {actual}-d vectors but the embedding model "
            f"{settings.embed_model} gives {dims}-d; bump INDEX_VERSION or use another cluster")
    return SetupResult(created=created, existing=existing, dims=dims)
