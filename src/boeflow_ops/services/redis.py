"""Run a project-local Redis (Debian's ``redis-server``) on loopback: the Celery broker of
the local Airflow. Data, log and pid file live under ``<state_dir>/redis``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis as redis_client

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow_ops.services.common import (
    ServiceError,
    ServiceStatus,
    as_user,
    chown_tree,
    ensure_service_user,
    make_traversable,
    port_in_use,
    read_pid,
    require_loopback,
    tail,
)

START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RedisLayout:
    root: Path
    data: Path
    logfile: Path
    pidfile: Path
    config: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLayout:
        root = settings.state_dir.resolve() / "redis"
        return cls(root=root, data=root / "data", logfile=root / "redis.log",
                   pidfile=root / "redis.pid", config=root / "redis.conf")


def redis_server() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ServiceError("redis-server not found; install the Debian package redis-server "
                           "(scripts/bootstrap.sh does)")
    return binary


def _client(settings: Settings) -> redis_client.Redis:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return redis_client.Redis(host=settings.redis_host, port=settings.redis_port,
                              password=password, socket_timeout=3, socket_connect_timeout=3)


def status(settings: Settings) -> ServiceStatus:
    url = f"redis://{settings.redis_host}:{settings.redis_port}/0"
    try:
        with _client(settings) as client:
            client.ping()
            info = client.info("server")
    except redis_client.RedisError as exc:
        running = read_pid(RedisLayout.from_settings(settings).pidfile) is not None
        reason = one_line(exc)
        return ServiceStatus("redis", url, running=running, detail=reason[:200])
    return ServiceStatus("redis", url, running=True, healthy=True,
                         version=str(info.get("redis_version")), detail="PONG")


def check_bind_address(settings: Settings) -> None:
    require_loopback("Redis", settings.redis_host, "BOEFLOW_REDIS_HOST",
                     allow_non_loopback=settings.services_allow_non_loopback,
                     secured=bool(settings.redis_password
                                  and settings.redis_password.get_secret_value()),
                     security_hint="BOEFLOW_REDIS_PASSWORD")


def _write_config(settings: Settings, layout: RedisLayout) -> None:
    """redis.conf (mode 0600: it may hold the password), rewritten on every start."""
    lines = [
        f"bind {settings.redis_host}",
        f"port {settings.redis_port}",
        "protected-mode yes",
        "daemonize yes",
        f"pidfile {layout.pidfile}",
        f"logfile {layout.logfile}",
        f"dir {layout.data}",
        "save 60 1",  # the broker's queues survive a restart
        "appendonly no",
        "supervised no",
    ]
    if settings.redis_password:
        lines.append(f'requirepass "{settings.redis_password.get_secret_value()}"')
    fd = os.open(layout.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    layout.config.chmod(0o600)


def start(settings: Settings) -> ServiceStatus:
    """Start Redis; a no-op when ours already runs."""
    check_bind_address(settings)
    layout = RedisLayout.from_settings(settings)
    current = status(settings)
    if current.healthy:
        return current
    if port_in_use(settings.redis_host, settings.redis_port):
        raise ServiceError(
            f"port {settings.redis_port} on {settings.redis_host} is already in use by another "
            f"program ({current.detail}); free it or set BOEFLOW_REDIS_PORT"
        )
    binary = redis_server()
    user = ensure_service_user(settings.service_user)
    layout.data.mkdir(parents=True, exist_ok=True)
    _write_config(settings, layout)
    if user:
        make_traversable(layout.root)
        chown_tree(layout.root, user)
    result = subprocess.run([binary, str(layout.config)], **as_user(user), capture_output=True,
                            text=True, check=False, cwd="/")
    if result.returncode != 0:
        first = (result.stderr or result.stdout).strip().splitlines()
        raise ServiceError(f"Redis failed to start on {settings.redis_host}:{settings.redis_port}"
                           + (f": {first[-1][:200]}" if first else ""), tail(layout.logfile, 15))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        current = status(settings)
        if current.healthy:
            return current
        time.sleep(0.2)
    raise ServiceError(f"Redis did not answer PING within {START_TIMEOUT_S:.0f}s on "
                       f"{settings.redis_host}:{settings.redis_port}", tail(layout.logfile, 15))


def stop(settings: Settings, timeout: float = 20.0) -> bool:
    """Stop our Redis (SHUTDOWN saves the data); True if it was running."""
    layout = RedisLayout.from_settings(settings)
    pid = read_pid(layout.pidfile)
    if pid is None:
        return False
    os.kill(pid, 15)  # redis-server saves and exits on SIGTERM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and read_pid(layout.pidfile) == pid:
        time.sleep(0.1)
    if read_pid(layout.pidfile) == pid:
        os.kill(pid, 9)
    layout.pidfile.unlink(missing_ok=True)
    return True
