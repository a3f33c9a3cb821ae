"""The day's state in PostgreSQL: forward-only SQL migrations and plain-SQL accessors.

``sql/NNN_name.sql`` files are applied in order, each in its own transaction, and recorded in
``schema_migrations``; ``upgrade`` is idempotent (a second call applies nothing) and safe to
run from several processes at once (a transaction-level advisory lock serialises them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from boeflow.config import Settings

SQL_DIR = Path(__file__).resolve().parents[3] / "sql"  # the repository's, when installed -e
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x626F65666C6F77  # "boeflow"

Connection = psycopg.Connection[dict[str, Any]]


class StateError(RuntimeError):
    """PostgreSQL is unreachable or the schema is unusable; the message is one clear line."""


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
    try:
        return psycopg.connect(host=settings.pg_host, port=settings.pg_port,
                               user=settings.pg_user,
                               password=settings.pg_password.get_secret_value(),
                               dbname=settings.pg_database, connect_timeout=10,
                               row_factory=dict_row)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateError(f"PostgreSQL is not reachable at {settings.pg_host}:{settings.pg_port} "
                         f"({first}); start it with `boeflow services start` or set "
                         "BOEFLOW_PG_HOST/PORT/USER/PASSWORD/DATABASE") from None


def upgrade(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply the pending migrations; return the names applied (empty when up to date)."""
    pending = migrations(sql_dir)
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
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
                                 f"{str(exc).strip().splitlines()[0]}") from None
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.name)
    return applied


_UPGRADED: set[str] = set()


@contextmanager
def state(settings: Settings) -> Iterator[Connection]:
    """A connection to an up-to-date schema (migrated once per process), closed on exit.
    Commits on success, rolls back on error."""
    conn = connect(settings)
    try:
        key = f"{settings.pg_host}:{settings.pg_port}/{settings.pg_database}"
        if key not in _UPGRADED:
            upgrade(conn, settings.sql_dir)
            _UPGRADED.add(key)
        with conn.transaction():
            yield conn
    finally:
        conn.close()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)
