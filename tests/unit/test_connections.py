"""Airflow Connections → boeflow Settings, with real Task SDK Connection objects (the same
class a task gets, here parsed from AIRFLOW_CONN_* style URIs and JSON)."""

from __future__ import annotations

import json

import pytest
from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchSQLHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import Connection

from boeflow.airflow import connections as c
from boeflow.core.settings import Settings, redact_url


@pytest.fixture()
def base(tmp_path: object) -> Settings:
    return Settings(es_url="http://127.0.0.1:9200", pg_port=5432,
                    boe_base_url="https://www.boe.es")


def test_connection_types_are_the_providers() -> None:
    assert ElasticsearchSQLHook.conn_type == c.ELASTICSEARCH_CONN_TYPE
    assert PostgresHook.conn_type == c.POSTGRES_CONN_TYPE


def test_no_connections_keep_the_settings(base: Settings) -> None:
    assert c.settings_from_connections({}, base) is base


def test_every_connection_fills_its_settings(base: Settings) -> None:
    conns = {
        c.ELASTICSEARCH_CONN_ID: Connection.from_json(json.dumps({
            "conn_type": "elasticsearch", "host": "es.example", "port": 9243,
            "schema": "https", "login": "elastic", "password": "p@ss:w/rd"}),
            conn_id=c.ELASTICSEARCH_CONN_ID),
        c.POSTGRES_CONN_ID: Connection.from_uri(
            "postgres://boe:s3cret@db.example:6543/boeflow_prod", conn_id=c.POSTGRES_CONN_ID),
        c.BOE_CONN_ID: Connection(conn_id=c.BOE_CONN_ID, conn_type="http",
                                  host="127.0.0.1", port=18455, schema="http"),
        c.LLM_CONN_ID: Connection(conn_id=c.LLM_CONN_ID, conn_type="openai",
                                  host="http://vllm:8000/v1", password="sk-123",
                                  extra=json.dumps({"model": "alia"})),
        c.EMBEDDINGS_CONN_ID: Connection(conn_id=c.EMBEDDINGS_CONN_ID, conn_type="http",
                                         host="tei", port=80),
    }
    s = c.settings_from_connections(conns, base)
    assert s.es_url == "https://elastic:p%40ss%3Aw%2Frd@es.example:9243"
    assert redact_url(s.es_url) == "https://***@es.example:9243"
    assert (s.pg_host, s.pg_port, s.pg_user, s.pg_database) == (
        "db.example", 6543, "boe", "boeflow_prod")
    assert s.pg_password.get_secret_value() == "s3cret"
    assert s.boe_base_url == "http://127.0.0.1:18455"
    assert s.gen_backend == "http"
    assert s.gen_http_url == "http://vllm:8000/v1"
    assert s.gen_http_api_key is not None and s.gen_http_api_key.get_secret_value() == "sk-123"
    assert s.gen_http_model == "alia"
    assert s.embed_remote_url == "http://tei:80"
    # Untouched settings keep their values.
    assert s.embed_model == base.embed_model
    # Secrets stay secret in the settings' own representation.
    assert "s3cret" not in repr(s) and "sk-123" not in repr(s)


def test_a_wrong_connection_type_is_named(base: Settings) -> None:
    conn = Connection(conn_id=c.POSTGRES_CONN_ID, conn_type="mysql", host="db")
    with pytest.raises(c.BadConnection, match="'boeflow_postgres' has type 'mysql'"):
        c.settings_from_connections({c.POSTGRES_CONN_ID: conn}, base)


def test_a_connection_without_host_is_named(base: Settings) -> None:
    conn = Connection(conn_id=c.ELASTICSEARCH_CONN_ID, conn_type="elasticsearch")
    with pytest.raises(c.BadConnection, match="'boeflow_elasticsearch' has no host"):
        c.settings_from_connections({c.ELASTICSEARCH_CONN_ID: conn}, base)


def test_outside_airflow_the_boeflow_settings_are_used(base: Settings) -> None:
    assert c.in_airflow_task() is False
    assert c.task_settings(base) is base
