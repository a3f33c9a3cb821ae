"""Helpers for the digest tests: a private PostgreSQL database per test, a real loopback SMTP
server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import psycopg
from psycopg import sql

from boeflow.core.settings import Settings


@contextmanager
def private_database(settings: Settings) -> Iterator[Settings]:
    """A fresh, empty database on the real PostgreSQL, dropped afterwards."""
    name = f"boeflow_t_{uuid.uuid4().hex[:10]}"
    admin = dict(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                 password=settings.pg_password.get_secret_value(), dbname="postgres",
                 autocommit=True)
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield settings.model_copy(update={"pg_database": name})
    finally:
        with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    from aiosmtpd.controller import Controller

    from boeflow_ops.services.common import free_port

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def body_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())  # type: ignore[attr-defined]


@contextmanager
def replayed_smoke_settings(live_settings: Settings, smoke_models_dir: Any, data_dir: Any,
                            prefix: str) -> Iterator[Settings]:
    """Smoke-profile settings over the recorded BOE replayed on loopback, a private state
    database and the index prefix ``prefix`` (its indices dropped first)."""
    from boeflow.boe.replay import BoeServer
    from boeflow.index.client import drop_indices, get_client
    from boeflow.index.mapping import IndexNames
    from tests.conftest import SAMPLES
    from tests.support.generation import SMOKE_GENERATION

    with get_client(live_settings) as client:
        drop_indices(client, IndexNames(prefix))
    with private_database(live_settings) as state, BoeServer(SAMPLES) as server:
        yield Settings(profile="smoke", smoke_models_dir=smoke_models_dir,
                       data_dir=data_dir, samples_dir=SAMPLES,
                       es_url=live_settings.es_url, es_index_prefix=prefix,
                       pg_port=state.pg_port, pg_database=state.pg_database,
                       boe_base_url=server.url, boe_rate_limit=0.0, boe_max_attempts=1,
                       boe_backoff_initial=0.01, **SMOKE_GENERATION)


def replayed_settings(prefix: str) -> Any:
    """A ``settings`` fixture of ``replayed_smoke_settings`` under the index prefix
    ``prefix``, with its own raw store: ``settings = replayed_settings(PREFIX)`` in a test
    module."""
    import pytest

    @pytest.fixture()
    def settings(live_settings: Settings, smoke_models_dir: Any,
                 tmp_path: Any) -> Iterator[Settings]:
        with replayed_smoke_settings(live_settings, smoke_models_dir, tmp_path / "data",
                                     prefix) as replayed:
            yield replayed

    return settings
