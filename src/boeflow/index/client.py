"""Elasticsearch client construction and `boeflow es setup` (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from boeflow.config import Settings, redact_url
from boeflow.errors import BoeflowError
from boeflow.index.mapping import IndexNames, index_name, templates

# Index-level settings that may change on a live index (the rest needs a new INDEX_VERSION).
_DYNAMIC_SETTINGS = ("number_of_replicas",)


class SearchBackendError(BoeflowError, RuntimeError):
    """Elasticsearch is unreachable, an index is missing, or a request was rejected.
    The message is one clear line for the user."""


def names_for(settings: Settings) -> IndexNames:
    return IndexNames(settings.es_index_prefix)


def get_client(settings: Settings) -> Elasticsearch:
    """A client whose every request is bounded: ``es_request_timeout`` seconds, retried
    ``es_max_retries`` times on connection errors and 502/503/504 but never on a timeout, so a
    silent server costs one timeout, not (retries + 1) of them."""
    return Elasticsearch(settings.es_url, request_timeout=settings.es_request_timeout,
                         retry_on_timeout=False, max_retries=settings.es_max_retries)


def bulk_client(client: Elasticsearch, settings: Settings) -> Elasticsearch:
    """The same client with the longer bound of bulk requests and refreshes."""
    return client.options(request_timeout=settings.es_bulk_timeout)


def unreachable(settings: Settings, exc: Exception, doing: str = "") -> SearchBackendError:
    """One clear line for a connection failure or timeout, naming the setting to change."""
    url = redact_url(settings.es_url)
    where = f" while {doing}" if doing else ""
    if isinstance(exc, ConnectionTimeout):
        return SearchBackendError(
            f"Elasticsearch at {url} did not answer within {settings.es_request_timeout:g}s"
            f"{where} (BOEFLOW_ES_REQUEST_TIMEOUT); is it overloaded or hung?")
    return SearchBackendError(
        f"Elasticsearch is not reachable at {url}{where} ({type(exc).__name__}); "
        "start it with `boeflow services start` or set BOEFLOW_ES_URL")


def check_reachable(client: Elasticsearch, settings: Settings) -> None:
    try:
        client.cluster.health(timeout=f"{max(int(settings.es_request_timeout), 1)}s")
    except (EsConnectionError, TransportError) as exc:
        raise unreachable(settings, exc) from None


@dataclass
class SetupResult:
    created: list[str]
    existing: list[str]
    dims: int


def setup_indices(client: Elasticsearch, settings: Settings, dims: int) -> SetupResult:
    """Create templates, versioned indices and aliases; a no-op when all exist."""
    check_reachable(client, settings)
    names = names_for(settings)
    bodies = templates(dims, names, shards=settings.es_shards, replicas=settings.es_replicas,
                       vector_index=settings.es_vector_index)
    for name, body in bodies.items():
        client.indices.put_index_template(name=name, **body)
    created: list[str] = []
    existing: list[str] = []
    for alias in names.all():
        concrete = index_name(alias)
        if client.indices.exists(index=concrete):
            existing.append(concrete)
            _update_existing(client, concrete, bodies[f"{alias}-template"]["template"])
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


def _update_existing(client: Elasticsearch, index: str, template: dict[str, Any]) -> None:
    """Bring an existing index up to the template where Elasticsearch allows it in place:
    new fields (e.g. ``*_stem``) are added, the replica count follows the settings. The vector
    field is left alone (its dims/index type change only with a new INDEX_VERSION)."""
    properties = {name: spec for name, spec in template["mappings"]["properties"].items()
                  if name != "vector"}
    try:
        client.indices.put_mapping(index=index, properties=properties)
    except ApiError as exc:
        raise SearchBackendError(
            f"{index} has a mapping boeflow cannot update in place ({exc.message}); "
            "bump INDEX_VERSION or use another index prefix") from None
    wanted = {key: template["settings"][key] for key in _DYNAMIC_SETTINGS}
    current = client.indices.get_settings(index=index, name="index.number_of_replicas")
    have = current[index]["settings"]["index"]["number_of_replicas"]
    if str(have) != str(wanted["number_of_replicas"]):
        client.indices.put_settings(index=index, settings={"index": wanted})


def drop_indices(client: Elasticsearch, names: IndexNames) -> list[str]:
    """Delete every versioned index behind ``names`` (tests, benchmarks). The cluster runs
    with ``action.destructive_requires_name: true``, so wildcards are resolved to concrete
    names first; returns the deleted names."""
    found: list[str] = []
    for alias in names.all():
        found += list(client.indices.get(index=f"{alias}-v*", allow_no_indices=True,
                                         ignore_unavailable=True, expand_wildcards="all"))
    if found:
        client.indices.delete(index=found, ignore_unavailable=True)
    return found
