"""The day's state in PostgreSQL: forward-only SQL migrations and plain-SQL accessors.

``sql/NNN_name.sql`` files are applied in order, each in its own transaction, and recorded in
``schema_migrations``; ``upgrade`` is idempotent (a second call applies nothing) and safe to
run from several processes at once (a transaction-level advisory lock serialises them).

Every connection is bounded in time (docs/limits.md): libpq's ``connect_timeout``, the
server-side ``statement_timeout`` and ``idle_in_transaction_session_timeout``, TCP keepalives
and ``tcp_user_timeout`` against a vanished peer, and a client-side deadline on every wait
for the server (``DeadlineConnection``), which is what ends a session whose server (or a
proxy in front of it) accepts bytes and never answers: none of the server-side timeouts can
fire there, and the kernel keeps acknowledging keepalives.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from boeflow.core.errors import BoeflowError, one_line
from boeflow.core.paths import shipped
from boeflow.core.settings import Settings

SQL_DIR = shipped("sql")  # the repository's migrations, shipped in the package
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x626F65666C6F77  # "boeflow"

# The client waits this much longer than the server's statement_timeout before deciding the
# server (or the network) has stalled: a slow statement is cancelled by the server first and
# reported as such.
DEADLINE_GRACE_S = 5.0
# TCP keepalive probes on an idle socket (seconds), for a peer that vanished without a FIN.
KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 3

Connection = psycopg.Connection[dict[str, Any]]
_RV = TypeVar("_RV")


class StateError(BoeflowError, RuntimeError):
    """PostgreSQL is unreachable or the schema is unusable; the message is one clear line."""


class DeadlineConnection(psycopg.Connection[dict[str, Any]]):
    """A connection on which no wait for the server lasts longer than ``deadline`` seconds:
    past it the connection is closed (its protocol state is unknown) and ``StateError``
    says so. psycopg runs every statement, fetch, commit and rollback through ``wait``."""

    deadline: float = 60.0
    where: str = "PostgreSQL"

    def wait(self, gen: PQGen[_RV], interval: float = 0.1,
             timeout: float | None = None) -> _RV:
        limit = self.deadline if timeout is None else min(timeout, self.deadline)
        started = time.monotonic()
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except psycopg.OperationalError:
            if time.monotonic() - started < limit:
                raise
            self.pgconn.finish()
            raise StateError(
                f"{self.where} did not answer within {limit:g} s (BOEFLOW_PG_STATEMENT_TIMEOUT "
                f"+ {DEADLINE_GRACE_S:g} s): the server or the network to it is stalled; "
                "the connection was closed") from None


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files, in order; refuses gaps and duplicate numbers."""
    if not sql_dir.is_dir():
        raise StateError(f"migration directory {sql_dir} does not exist")
    found: list[Migration] = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if not match:
            raise StateError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(match.group(1), path.stem, path))
    for expected, migration in enumerate(found, start=1):
        if int(migration.version) != expected:
            raise StateError(f"migration {migration.path.name}: expected number {expected:03d}")
    return found


def connect(settings: Settings) -> Connection:
    """A connection with every deadline of docs/limits.md set (see the module docstring)."""
    where = f"PostgreSQL at {settings.pg_host}:{settings.pg_port}"
    deadline = settings.pg_statement_timeout + DEADLINE_GRACE_S
    options = (f"-c statement_timeout={round(settings.pg_statement_timeout * 1000)} "
               "-c idle_in_transaction_session_timeout="
               f"{round(settings.pg_idle_in_transaction_timeout * 1000)}")
    try:
        conn = DeadlineConnection.connect(
            host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
            password=settings.pg_password.get_secret_value(), dbname=settings.pg_database,
            connect_timeout=settings.pg_connect_timeout, options=options,
            keepalives=1, keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=KEEPALIVE_INTERVAL_S, keepalives_count=KEEPALIVE_COUNT,
            tcp_user_timeout=round(deadline * 1000), row_factory=dict_row)
    except psycopg.OperationalError as exc:
        first = one_line(exc)
        raise StateError(f"PostgreSQL is not reachable at {settings.pg_host}:{settings.pg_port} "
                         f"({first}); start it with `boeflow services start` or set "
                         "BOEFLOW_PG_HOST/PORT/USER/PASSWORD/DATABASE") from None
    conn.deadline = deadline
    conn.where = where
    return conn


def _lost(settings: Settings, exc: psycopg.Error) -> StateError:
    """One line for a session that failed under a deadline (or lost its server)."""
    where = f"PostgreSQL at {settings.pg_host}:{settings.pg_port}"
    first = one_line(exc)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StateError(f"{where}: a statement ran longer than "
                          f"{settings.pg_statement_timeout:g} s and was cancelled "
                          f"(BOEFLOW_PG_STATEMENT_TIMEOUT): {first}")
    if isinstance(exc, psycopg.errors.IdleInTransactionSessionTimeout):
        return StateError(f"{where} ended a session idle in a transaction for over "
                          f"{settings.pg_idle_in_transaction_timeout:g} s "
                          f"(BOEFLOW_PG_IDLE_IN_TRANSACTION_TIMEOUT): {first}")
    return StateError(f"{where}: the connection was lost ({first})")


def upgrade(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply the pending migrations; return the names applied (empty when up to date)."""
    pending = migrations(sql_dir)
    applied: list[str] = []
    with conn.transaction():
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        except psycopg.errors.QueryCanceled:
            raise StateError("another process has been migrating the schema for longer than "
                             "BOEFLOW_PG_STATEMENT_TIMEOUT; retry when it is done") from None
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                            version    text PRIMARY KEY,
                            name       text NOT NULL,
                            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {row["version"] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in pending:
            if migration.version in done:
                continue
            try:
                conn.execute(migration.path.read_text(encoding="utf-8").encode("utf-8"))
            except psycopg.Error as exc:
                raise StateError(f"migration {migration.path.name} failed: "
                                 f"{one_line(exc)}") from None
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.name)
    return applied


_UPGRADED: set[str] = set()


def _server_key(settings: Settings) -> str:
    return f"{settings.pg_user}@{settings.pg_host}:{settings.pg_port}/{settings.pg_database}"


@dataclass
class _Session:
    """The task's one connection, opened on first use by ``state`` and closed by
    ``pg_session``'s exit."""

    key: str
    conn: Connection | None = None


_SESSION: ContextVar[_Session | None] = ContextVar("boeflow_pg_session", default=None)


@contextmanager
def pg_session(settings: Settings) -> Iterator[None]:
    """One PostgreSQL connection for everything inside (a task): each ``state`` block reuses
    it as its own transaction. Opened only when a block needs it; closed on exit. Nested
    sessions on the same server share the outer one."""
    current = _SESSION.get()
    if current is not None and current.key == _server_key(settings):
        yield
        return
    session = _Session(_server_key(settings))
    token = _SESSION.set(session)
    try:
        yield
    finally:
        _SESSION.reset(token)
        if session.conn is not None:
            session.conn.close()


def _open(settings: Settings) -> Connection:
    conn = connect(settings)
    key = _server_key(settings)
    if key not in _UPGRADED:
        try:
            upgrade(conn, settings.sql_dir)
        except BaseException:
            conn.close()
            raise
        _UPGRADED.add(key)
    return conn


def _session_connection(settings: Settings) -> tuple[Connection, bool]:
    """The connection a ``state`` block uses, and whether the block owns (closes) it."""
    session = _SESSION.get()
    if session is None or session.key != _server_key(settings):
        return _open(settings), True
    if session.conn is None or session.conn.closed or session.conn.broken:
        session.conn = _open(settings)  # first use, or the last one was lost
    return session.conn, False


@contextmanager
def state(settings: Settings) -> Iterator[Connection]:
    """A connection to an up-to-date schema (migrated once per process): the task's
    connection inside ``pg_session``, else a new one closed on exit. One transaction:
    commits on success, rolls back on error. A statement cancelled by a timeout, a session
    ended by the server or a lost connection become one ``StateError`` line."""
    try:
        conn, owned = _session_connection(settings)
    except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
        raise _lost(settings, exc) from None
    try:
        with conn.transaction():
            yield conn
    except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
        raise _lost(settings, exc) from None
    finally:
        if owned:
            conn.close()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)
