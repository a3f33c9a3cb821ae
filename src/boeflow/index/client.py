"""Elasticsearch client construction and `boeflow es setup` (idempotent)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from boeflow.core.errors import BoeflowError
from boeflow.core.settings import Settings, redact_url
from boeflow.index.mapping import (
    ALIASES,
    DOCUMENTS,
    IndexNames,
    index_name,
    index_version,
    templates,
)

# Index-level settings that may change on a live index (the rest needs a new index version).
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


def _client_key(settings: Settings) -> tuple[Any, ...]:
    return (settings.es_url, settings.es_request_timeout, settings.es_max_retries)


_TASK_CLIENT: ContextVar[tuple[tuple[Any, ...], Elasticsearch] | None] = ContextVar(
    "boeflow_es_client", default=None)


@contextmanager
def es_session(settings: Settings) -> Iterator[Elasticsearch]:
    """The task's one Elasticsearch client: every ``es_session`` inside the outermost one
    (with the same settings) gets the same client; the outermost closes it on exit."""
    current = _TASK_CLIENT.get()
    if current is not None and current[0] == _client_key(settings):
        yield current[1]
        return
    client = get_client(settings)
    token = _TASK_CLIENT.set((_client_key(settings), client))
    try:
        yield client
    finally:
        _TASK_CLIENT.reset(token)
        client.close()


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
    # older index → its successor, for indices whose records were copied forward
    upgraded: dict[str, str] = field(default_factory=dict)


_READY: set[tuple[Any, ...]] = set()


def ensure_indices(client: Elasticsearch, settings: Settings, dims: int) -> None:
    """``setup_indices`` once per process and index layout; later calls (every other batch
    of the run) check with one request that the indices are still there, and set them up
    again only when they are not (a cluster reset between runs)."""
    key = (settings.es_url, settings.es_index_prefix, dims, settings.es_shards,
           settings.es_replicas, settings.es_vector_index)
    if key in _READY and client.indices.exists(index=",".join(names_for(settings).all())):
        return
    setup_indices(client, settings, dims)
    _READY.add(key)


def _documents_from_v1(source: dict[str, Any]) -> dict[str, Any]:
    # v1 held only the Valencian resumen as text; v2 holds the whole summary's structure.
    # The other fields are filled by the next enrich run (the Spanish summary is cached).
    if isinstance(source.get("summary_va"), str):
        source["summary_va"] = {"resumen": source["summary_va"]}
    return source


# (alias, version it upgrades from) → how one record changes; an alias whose version was
# bumped without an entry here has its records copied unchanged.
UPGRADES: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    (DOCUMENTS, 1): _documents_from_v1,
}


def _older_index(client: Elasticsearch, alias: str) -> tuple[str, int] | None:
    """The newest older-version index of ``alias`` that exists, with its version."""
    for version in range(index_version(alias) - 1, 0, -1):
        name = index_name(alias, version)
        if client.indices.exists(index=name):
            return name, version
    return None


def _wait_for_alias(client: Elasticsearch, settings: Settings, alias: str,
                    concrete: str) -> None:
    """Wait while another process upgrades ``alias`` (an older index still holds it)."""
    deadline = time.monotonic() + 5 * settings.es_bulk_timeout
    while _older_index(client, alias) is not None and not client.indices.exists_alias(
            name=alias, index=concrete):
        if not client.indices.exists_alias(name=alias):
            return  # nobody holds the alias: a fresh cluster, not an upgrade
        if time.monotonic() > deadline:
            raise SearchBackendError(f"{alias} is being upgraded to {concrete} by another "
                                     "process and did not finish in time; run again later")
        time.sleep(1.0)


def upgrade_index(client: Elasticsearch, alias: str, old: str, old_version: int,
                  new: str) -> int:
    """Copy every record of ``old`` into ``new`` (created from the current template),
    upgraded version by version, then move ``alias`` to ``new`` in one atomic alias update.
    The old index is kept (nothing is deleted); the copy is client-side because the
    cluster need not have the reindex module. Returns the number of records copied."""
    from elasticsearch.helpers import bulk, scan

    base = next(b for b in ALIASES if alias.endswith(b))
    steps = [UPGRADES[(base, v)] for v in range(old_version, index_version(alias))
             if (base, v) in UPGRADES]

    def actions() -> Iterator[dict[str, Any]]:
        # Vectors are left out of _source by default (index.mapping.exclude_source_vectors);
        # ask for them so a copied chunk keeps its embedding.
        query = {"query": {"match_all": {}}, "_source": {"exclude_vectors": False}}
        for hit in scan(client, index=old, query=query, size=500):
            source = hit["_source"]
            for step in steps:
                source = step(source)
            yield {"_op_type": "index", "_index": new, "_id": hit["_id"], "_source": source}

    copied, errors = bulk(client, actions(), chunk_size=500, raise_on_error=False,
                          stats_only=True)
    if errors:
        raise SearchBackendError(f"{errors} records of {old} could not be copied to {new}; "
                                 f"{alias} still points to {old}")
    client.indices.refresh(index=new)
    client.indices.update_aliases(actions=[
        {"remove": {"index": old, "alias": alias}},
        {"add": {"index": new, "alias": alias}}])
    return int(copied)


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
    upgraded: dict[str, str] = {}
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
                # Another process (a parallel index task) created it and may be copying an
                # older index into it: writing before the alias moves could lose records.
                _wait_for_alias(client, settings, alias, concrete)
            else:
                created.append(concrete)
                older = _older_index(client, alias)
                if older is not None:
                    upgrade_index(client, alias, older[0], older[1], concrete)
                    upgraded[older[0]] = concrete
        if not client.indices.exists_alias(name=alias, index=concrete):
            client.indices.put_alias(index=concrete, name=alias)
    chunks = index_name(names.chunks)
    mapping = client.indices.get_mapping(index=chunks)
    actual = mapping[chunks]["mappings"]["properties"]["vector"]["dims"]
    if actual != dims:
        raise SearchBackendError(
            f"{chunks} holds {actual}-d vectors but the embedding model "
            f"{settings.embed_model} gives {dims}-d; bump its INDEX_VERSIONS entry or use "
            "another cluster")
    return SetupResult(created=created, existing=existing, dims=dims, upgraded=upgraded)


def _update_existing(client: Elasticsearch, index: str, template: dict[str, Any]) -> None:
    """Bring an existing index up to the template where Elasticsearch allows it in place:
    new fields (e.g. ``*_stem``) are added, the replica count follows the settings. The vector
    field is left alone (its dims/index type change only with a new index version)."""
    properties = {name: spec for name, spec in template["mappings"]["properties"].items()
                  if name != "vector"}
    try:
        client.indices.put_mapping(index=index, properties=properties)
    except ApiError as exc:
        raise SearchBackendError(
            f"{index} has a mapping boeflow cannot update in place ({exc.message}); "
            "bump its INDEX_VERSIONS entry or use another index prefix") from None
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
