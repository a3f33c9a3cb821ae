"""Connections, not code: inside Airflow, where boeflow's services are comes from Airflow
Connections; outside Airflow, from the ``BOEFLOW_*`` settings.

=====================  ==============================  =====================================
connection id          type (provider convention)      settings it fills
=====================  ==============================  =====================================
``boeflow_elasticsearch``  ``elasticsearch`` (host, port,  ``es_url`` (credentials in the URL,
                           login, password, schema =       redacted wherever it is printed)
                           ``http``/``https``)
``boeflow_postgres``       ``postgres`` (host, port,       ``pg_host``, ``pg_port``, ``pg_user``,
                           login, password, schema = db)   ``pg_password``, ``pg_database``
``boeflow_boe``            ``http`` (host, port, schema    ``boe_base_url``
                           = ``http``/``https``)
``boeflow_llm``            ``http`` or ``openai`` (host,   ``gen_backend = "http"``,
                           port, schema, password = API    ``gen_http_url``, ``gen_http_api_key``,
                           key, extra ``model``)           ``gen_http_model``
``boeflow_embeddings``     ``http`` (TEI server)           ``embed_remote_url``
=====================  ==============================  =====================================

A missing connection leaves the corresponding settings as they are, so a deployment can
define only some of them. ``host`` may also hold a whole URL (``http://vllm:8000/v1``), as
the Airflow UI allows. Connection secrets are registered with Airflow's secrets masker when
the Task SDK fetches them, and every URL built here is masked too, so they appear as
``***`` in task logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from boeflow.core.settings import Settings, get_settings

ELASTICSEARCH_CONN_ID = "boeflow_elasticsearch"
POSTGRES_CONN_ID = "boeflow_postgres"
BOE_CONN_ID = "boeflow_boe"
LLM_CONN_ID = "boeflow_llm"
EMBEDDINGS_CONN_ID = "boeflow_embeddings"
# Connection types registered by the pinned providers (the UI's connection form offers
# them with these fields); tests check they match the providers' hooks.
ELASTICSEARCH_CONN_TYPE = "elasticsearch"  # apache-airflow-providers-elasticsearch
POSTGRES_CONN_TYPE = "postgres"  # apache-airflow-providers-postgres
CONN_IDS = (ELASTICSEARCH_CONN_ID, POSTGRES_CONN_ID, BOE_CONN_ID, LLM_CONN_ID,
            EMBEDDINGS_CONN_ID)


class BadConnection(ValueError):
    """A connection exists but cannot be used; the message names it and the field."""


class ConnectionLike(Protocol):
    """What boeflow reads from an Airflow ``Connection`` (Task SDK or core model)."""

    conn_id: str
    conn_type: str | None
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Fields:
    conn_id: str
    conn_type: str
    host: str
    port: int | None
    login: str
    password: str
    schema: str
    extra: dict[str, Any]


def _fields(conn: ConnectionLike) -> _Fields:
    return _Fields(conn_id=conn.conn_id, conn_type=(conn.conn_type or "").lower(),
                   host=(conn.host or "").strip(), port=conn.port, login=conn.login or "",
                   password=conn.password or "", schema=(conn.schema or "").strip(),
                   extra=dict(conn.extra_dejson or {}))


def _check_type(f: _Fields, allowed: tuple[str, ...]) -> None:
    if f.conn_type and f.conn_type not in allowed:
        raise BadConnection(f"Airflow connection {f.conn_id!r} has type {f.conn_type!r}; "
                               f"expected {' or '.join(allowed)}")
    if not f.host:
        raise BadConnection(f"Airflow connection {f.conn_id!r} has no host")


def _url(f: _Fields, *, default_scheme: str, with_credentials: bool) -> str:
    """``scheme://[user:password@]host[:port][/path]`` from a connection whose host is
    either a bare host name or a whole URL; ``schema`` holds the scheme (provider style)."""
    if "://" in f.host:
        parts = urlsplit(f.host)
        scheme, host, path = parts.scheme, parts.hostname or "", parts.path
        port = f.port or parts.port
    else:
        scheme = f.schema if f.schema in ("http", "https") else default_scheme
        host, _, path = f.host.partition("/")
        path = f"/{path}" if path else ""
        port = f.port
    if not host:
        raise BadConnection(f"Airflow connection {f.conn_id!r} has no host")
    host = f"[{host}]" if ":" in host else host
    auth = ""
    if with_credentials and f.login:
        auth = quote(f.login, safe="")
        if f.password:
            auth += ":" + quote(f.password, safe="")
        auth += "@"
    return f"{scheme}://{auth}{host}{f':{port}' if port else ''}{path.rstrip('/')}"


def elasticsearch_overrides(conn: ConnectionLike) -> dict[str, Any]:
    """The Elasticsearch provider's convention (``ElasticsearchSQLHook``): ``schema`` is the
    URL scheme, login/password are basic auth (the client reads them from the URL)."""
    f = _fields(conn)
    _check_type(f, (ELASTICSEARCH_CONN_TYPE, "http"))
    return {"es_url": _url(f, default_scheme="http", with_credentials=True)}


def postgres_overrides(conn: ConnectionLike) -> dict[str, Any]:
    """The Postgres provider's convention (``PostgresHook``): ``schema`` is the database."""
    f = _fields(conn)
    _check_type(f, (POSTGRES_CONN_TYPE, "postgresql"))
    out: dict[str, Any] = {"pg_host": f.host}
    if f.port:
        out["pg_port"] = f.port
    if f.login:
        out["pg_user"] = f.login
    if f.password:
        out["pg_password"] = f.password
    if f.schema:
        out["pg_database"] = f.schema
    return out


def boe_overrides(conn: ConnectionLike) -> dict[str, Any]:
    f = _fields(conn)
    _check_type(f, ("http", "https"))
    return {"boe_base_url": _url(f, default_scheme="https", with_credentials=False)}


def llm_overrides(conn: ConnectionLike) -> dict[str, Any]:
    """An OpenAI-compatible server (``vllm serve``): the enrich stage's HTTP backend."""
    f = _fields(conn)
    _check_type(f, ("http", "https", "openai"))
    out: dict[str, Any] = {"gen_backend": "http",
                           "gen_http_url": _url(f, default_scheme="http",
                                                with_credentials=False)}
    api_key = f.password or f.extra.get("api_key")
    if api_key:
        out["gen_http_api_key"] = str(api_key)
    if f.extra.get("model"):
        out["gen_http_model"] = str(f.extra["model"])
    return out


def embeddings_overrides(conn: ConnectionLike) -> dict[str, Any]:
    f = _fields(conn)
    _check_type(f, ("http", "https"))
    return {"embed_remote_url": _url(f, default_scheme="http", with_credentials=False)}


READERS = {
    ELASTICSEARCH_CONN_ID: elasticsearch_overrides,
    POSTGRES_CONN_ID: postgres_overrides,
    BOE_CONN_ID: boe_overrides,
    LLM_CONN_ID: llm_overrides,
    EMBEDDINGS_CONN_ID: embeddings_overrides,
}


def settings_from_connections(connections: dict[str, ConnectionLike],
                              base: Settings | None = None) -> Settings:
    """``base`` (default: the ``BOEFLOW_*`` settings) with the fields the given
    connections define. Validated like any other settings."""
    base = base or get_settings()
    overrides: dict[str, Any] = {}
    for conn_id, reader in READERS.items():
        if conn_id in connections:
            overrides.update(reader(connections[conn_id]))
    if not overrides:
        return base
    return Settings.model_validate({**base.model_dump(), **overrides})


def in_airflow_task() -> bool:
    """True inside a running Airflow task (the Task SDK has a current context)."""
    try:
        from airflow.sdk import get_current_context
    except ImportError:
        return False
    try:
        get_current_context()
    except RuntimeError:
        return False
    return True


def _mask(settings: Settings) -> None:
    """Register every secret-bearing value with Airflow's secrets masker."""
    from airflow.sdk.log import mask_secret

    for value in (settings.es_url, settings.gen_http_url, settings.embed_remote_url):
        if value and "@" in urlsplit(value).netloc:
            mask_secret(value)
    for secret in (settings.pg_password, settings.gen_http_api_key):
        if secret is not None and secret.get_secret_value():
            mask_secret(secret.get_secret_value())


def fetch_connections(conn_ids: tuple[str, ...] = CONN_IDS) -> dict[str, ConnectionLike]:
    """The boeflow connections defined in Airflow (secrets backends, ``AIRFLOW_CONN_*``
    environment variables, the metadata database), fetched through the Task SDK."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    found: dict[str, ConnectionLike] = {}
    for conn_id in conn_ids:
        try:
            found[conn_id] = Connection.get(conn_id)
        except AirflowNotFoundException:
            continue
    return found


def task_settings(base: Settings | None = None) -> Settings:
    """The settings a task should use: inside Airflow, the ``BOEFLOW_*`` settings overlaid
    with the boeflow Connections; outside Airflow, the ``BOEFLOW_*`` settings alone."""
    if not in_airflow_task():
        return base or get_settings()
    settings = settings_from_connections(fetch_connections(), base)
    _mask(settings)
    return settings
