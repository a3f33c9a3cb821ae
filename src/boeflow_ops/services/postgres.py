"""Run a project-local PostgreSQL cluster (Debian's server binaries) on loopback, with a
``boeflow`` role and database."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.core.versions import postgres_major
from boeflow_ops.services.common import (
    ServiceError,
    ServiceStatus,
    as_user,
    chown_tree,
    ensure_service_user,
    is_root,
    make_traversable,
    port_in_use,
    require_loopback,
    tail,
)

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PgLayout:
    bindir: Path
    root: Path
    data: Path
    logfile: Path
    socket_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> PgLayout:
        root = settings.state_dir / "postgres"
        return cls(
            bindir=Path(f"/usr/lib/postgresql/{postgres_major()}/bin"),
            root=root,
            data=root / "data",
            logfile=root / "postgres.log",
            socket_dir=root / "run",
        )


def ensure_binaries(layout: PgLayout) -> None:
    if (layout.bindir / "postgres").exists():
        return
    package = f"postgresql-{postgres_major()}"
    apt = shutil.which("apt-get")
    if not is_root() or apt is None:
        raise ServiceError(f"PostgreSQL server binaries missing ({layout.bindir}); "
                           f"install the Debian package {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", package]):
        result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"could not install {package}: {result.stderr.strip()[-300:]}")


def _run(args: list[str], user: str | None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, **as_user(user), capture_output=True, text=True, check=False,
                            env=env, cwd="/")
    if result.returncode != 0:
        raise ServiceError(f"{Path(args[0]).name} failed: "
                           f"{(result.stderr or result.stdout).strip()[-400:]}")
    return str(result.stdout)


def _psql(layout: PgLayout, user: str | None, env: dict[str, str], role: str, sql: str,
          **variables: str) -> str:
    args = [str(layout.bindir / "psql"), "-U", role, "-d", "postgres", "-tA", "-X", "-q"]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    result = subprocess.run(args, input=sql + "\n", **as_user(user), capture_output=True,
                            text=True, check=False, env=env, cwd="/")
    if result.returncode != 0:
        raise ServiceError(f"psql failed: {(result.stderr or result.stdout).strip()[-400:]}")
    return str(result.stdout)


def _connect(settings: Settings, timeout: int = 3) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                           password=settings.pg_password.get_secret_value(),
                           dbname=settings.pg_database,
                           connect_timeout=timeout)


def _has_database(settings: Settings, name: str) -> bool:
    with _connect(settings) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _create_database(settings: Settings, name: str) -> None:
    from psycopg import sql

    with _connect(settings) as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def status(settings: Settings) -> ServiceStatus:
    url = f"postgresql://{settings.pg_user}@{settings.pg_host}:{settings.pg_port}/{settings.pg_database}"
    try:
        with _connect(settings) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        running = port_in_use(settings.pg_host, settings.pg_port)
        reason = one_line(exc)
        return ServiceStatus("postgresql", url, running=running, detail=reason[:200])
    version = str(row[0]) if row else None
    return ServiceStatus("postgresql", url, running=True, healthy=True, version=version,
                         detail="accepting connections")


def _initdb(settings: Settings, layout: PgLayout, user: str | None) -> None:
    if (layout.data / "PG_VERSION").exists():
        return
    staging = layout.root / "data.init"
    shutil.rmtree(staging, ignore_errors=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    if user:
        make_traversable(layout.root)
        chown_tree(layout.root, user)
    with tempfile.NamedTemporaryFile("w", delete=False, dir=layout.root, suffix=".pw") as pw:
        pw.write(settings.pg_password.get_secret_value())
    pwfile = Path(pw.name)
    if user:
        chown_tree(pwfile, user)
    try:
        _run([str(layout.bindir / "initdb"), "-D", str(staging), "-U", settings.pg_user,
              f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
              "--encoding=UTF8", "--locale=C.UTF-8"], user)
    finally:
        pwfile.unlink(missing_ok=True)
    staging.rename(layout.data)  # a cluster dir exists under its final name only when complete


def check_bind_address(settings: Settings) -> None:
    """PostgreSQL listens on ``pg_host``: loopback only, unless exposing it was asked for
    and the role has a password other than the shipped default."""
    default = Settings.model_fields["pg_password"].default.get_secret_value()
    require_loopback("PostgreSQL", settings.pg_host, "BOEFLOW_PG_HOST",
                     allow_non_loopback=settings.services_allow_non_loopback,
                     secured=settings.pg_password.get_secret_value() != default,
                     security_hint="a non-default BOEFLOW_PG_PASSWORD")


def start(settings: Settings) -> ServiceStatus:
    """Install (once), initialise (once) and start PostgreSQL; a no-op when it already runs."""
    layout = PgLayout.from_settings(settings)
    check_bind_address(settings)
    current = status(settings)
    if current.healthy and _has_database(settings, settings.pg_airflow_database):
        return current
    if current.healthy:
        _create_database(settings, settings.pg_airflow_database)
        return current
    if port_in_use(settings.pg_host, settings.pg_port):
        raise ServiceError(
            f"port {settings.pg_port} on {settings.pg_host} is already in use by another "
            f"program ({current.detail}); free it or set BOEFLOW_PG_PORT"
        )
    ensure_binaries(layout)
    user = ensure_service_user(settings.service_user)
    _initdb(settings, layout, user)
    layout.socket_dir.mkdir(parents=True, exist_ok=True)
    if user:
        chown_tree(layout.root, user)
    options = (f"-c listen_addresses={settings.pg_host} -c port={settings.pg_port} "
               f"-c unix_socket_directories={layout.socket_dir}")
    result = subprocess.run(
        [str(layout.bindir / "pg_ctl"), "-D", str(layout.data), "-l", str(layout.logfile),
         "-o", options, "-w", "-t", str(int(START_TIMEOUT_S)), "start"],
        **as_user(user), capture_output=True, text=True, check=False, cwd="/",
    )
    if result.returncode != 0:
        raise ServiceError(f"PostgreSQL failed to start on {settings.pg_host}:{settings.pg_port}",
                           tail(layout.logfile, 15))
    # The role was created by initdb (-U); the database may not exist yet.
    sql_env = {"PGHOST": str(layout.socket_dir), "PGPORT": str(settings.pg_port),
               "PATH": os.environ.get("PATH", "")}
    # Values go through psql variables (stdin script), never string-built SQL.
    # boeflow's own database, and one for Airflow's metadata (same role, same cluster).
    for database in (settings.pg_database, settings.pg_airflow_database):
        exists = _psql(layout, user, sql_env, settings.pg_user,
                       "SELECT 1 FROM pg_database WHERE datname = :'dbname'", dbname=database)
        if exists.strip() != "1":
            _run([str(layout.bindir / "createdb"), "-U", settings.pg_user, "-O",
                  settings.pg_user, database], user, sql_env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = status(settings)
        if current.healthy:
            return current
        time.sleep(0.3)
    raise ServiceError("PostgreSQL started but refuses the boeflow role: " + current.detail,
                       tail(layout.logfile, 15))


def stop(settings: Settings) -> bool:
    layout = PgLayout.from_settings(settings)
    if not (layout.data / "postmaster.pid").exists():
        return False
    user = settings.service_user if is_root() else None
    result = subprocess.run([str(layout.bindir / "pg_ctl"), "-D", str(layout.data), "-m", "fast",
                             "-w", "stop"], **as_user(user), capture_output=True, text=True,
                            check=False, cwd="/")
    return result.returncode == 0
