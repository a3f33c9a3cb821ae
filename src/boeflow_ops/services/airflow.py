"""Run a local Airflow 3 deployment as separate processes on loopback.

Components: ``api-server`` (UI, REST API, execution API), ``scheduler``, ``dag-processor``,
``triggerer`` and a CeleryExecutor ``celery worker``; Redis (``boeflow_ops.services.redis``) is
the Celery broker, PostgreSQL (``boeflow_ops.services.postgres``) the metadata database and the
Celery result backend. ``AIRFLOW_HOME`` is ``<state_dir>/airflow``; its ``airflow.cfg`` is
generated from the boeflow settings on every start (mode 0600: it holds the database
password and the secrets), so plain ``airflow`` commands run with that ``AIRFLOW_HOME`` see
the same deployment.

Login: Airflow's simple auth manager with one ``admin`` user. boeflow generates the password
and writes it to ``<state_dir>/airflow/admin-password.json`` (mode 0600) *before* the
api-server starts: the auth manager only generates and prints a password for users missing
from that file, so the password is never printed or logged. (FAB would add Flask-AppBuilder
and its user database for a single local user; the docker deployment is where a real
identity provider belongs, see docs/deploy.md.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from boeflow.airflow.pools import LLM_POOL
from boeflow.core.settings import Settings
from boeflow_ops.services import postgres, redis
from boeflow_ops.services.common import (
    ServiceError,
    ServiceStatus,
    port_in_use,
    processes,
    read_pid,
    require_loopback,
    tail,
)

# Start order; stop runs in reverse. More workers (BOEFLOW_AIRFLOW_WORKERS) are
# celery-worker-2, celery-worker-3, … after these.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
WORKER = "celery-worker"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 45.0
HEARTBEAT_MAX_AGE_S = 60.0
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
CELERY_EXECUTOR = "airflow.providers.celery.executors.celery_executor.CeleryExecutor"


@dataclass(frozen=True)
class AirflowLayout:
    home: Path  # AIRFLOW_HOME
    config: Path  # airflow.cfg, 0600
    secrets: Path  # fernet key, JWT and session secrets, 0600
    password_file: Path  # the admin password (simple auth manager's JSON), 0600
    run: Path  # pid files
    logs: Path  # stdout/stderr of each component
    task_logs: Path  # Airflow's base_log_folder

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowLayout:
        home = settings.state_dir.resolve() / "airflow"
        return cls(home=home, config=home / "airflow.cfg", secrets=home / "secrets.json",
                   password_file=home / "admin-password.json", run=home / "run",
                   logs=home / "process-logs", task_logs=home / "logs")

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def logfile(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def components(settings: Settings) -> tuple[str, ...]:
    """The components of this deployment in start order (one per Celery worker)."""
    return COMPONENTS + tuple(f"{WORKER}-{n}" for n in range(2, settings.airflow_workers + 1))


def worker_name(component: str = WORKER) -> str:
    """The Celery node name of a local worker (what ``celery inspect ping`` answers as):
    ``boeflow@host`` for the first, ``boeflow2@host`` for ``celery-worker-2``…"""
    number = component.removeprefix(WORKER).removeprefix("-")
    return f"boeflow{number}@{socket.gethostname()}"


def airflow_executable() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    if not candidate.exists():
        raise ServiceError(f"the airflow command is missing next to {sys.executable}; "
                           "reinstall the environment with scripts/bootstrap.sh")
    return str(candidate)


# --- files ------------------------------------------------------------------------------------

def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (atomic replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    staging.replace(path)
    path.chmod(0o600)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        raise ServiceError(f"{path} is not valid JSON; delete it to regenerate it") from None
    if not isinstance(data, dict):
        raise ServiceError(f"{path} is not a JSON object; delete it to regenerate it")
    return data


def ensure_secrets(layout: AirflowLayout, admin_user: str) -> dict[str, str]:
    """Generate (once) the Fernet key, the JWT and session secrets and the admin password."""
    from cryptography.fernet import Fernet

    values = {k: str(v) for k, v in _load_json(layout.secrets).items()}
    missing: dict[str, str] = {}
    if not values.get("fernet_key"):
        missing["fernet_key"] = Fernet.generate_key().decode("ascii")
    for key in ("jwt_secret", "secret_key"):
        if not values.get(key):
            missing[key] = secrets.token_urlsafe(32)
    if missing:
        values.update(missing)
        _write_private(layout.secrets, json.dumps(values, indent=2) + "\n")
    ensure_admin_password(layout.password_file, admin_user)
    layout.secrets.chmod(0o600)
    return values


def ensure_admin_password(path: Path, admin_user: str) -> None:
    """Add a generated password for ``admin_user`` to the simple auth manager's password
    file (JSON, mode 0600) unless it has one. Nothing is printed."""
    passwords = {k: str(v) for k, v in _load_json(path).items()}
    if not passwords.get(admin_user):
        passwords[admin_user] = secrets.token_urlsafe(18)
        _write_private(path, json.dumps(passwords) + "\n")
    path.chmod(0o600)


def ensure_deployment_secrets(directory: Path, admin_user: str) -> list[Path]:
    """For the docker deployment: one 0600 file per secret in ``directory`` (read by
    Airflow through ``AIRFLOW__..._CMD``), generated once, plus the admin password file."""
    from cryptography.fernet import Fernet

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("fernet_key", "jwt_secret", "secret_key"):
        path = directory / name
        if not path.exists() or not path.read_text(encoding="utf-8").strip():
            value = (Fernet.generate_key().decode("ascii") if name == "fernet_key"
                     else secrets.token_urlsafe(32))
            _write_private(path, value)
        path.chmod(0o600)
        written.append(path)
    password_file = directory / "admin-password.json"
    ensure_admin_password(password_file, admin_user)
    return [*written, password_file]


def admin_password(settings: Settings) -> str:
    """The generated admin password (for tests and API clients; never printed)."""
    layout = AirflowLayout.from_settings(settings)
    password = _load_json(layout.password_file).get(settings.airflow_admin_user)
    if not password:
        raise ServiceError(f"no Airflow admin password yet in {layout.password_file}; "
                           "run `boeflow airflow up`")
    return str(password)


def airflow_config(settings: Settings, layout: AirflowLayout,
                   secret_values: dict[str, str]) -> dict[str, dict[str, str]]:
    """The ``airflow.cfg`` of the local deployment, section → key → value."""
    return {
        "core": {
            "dags_folder": str(settings.airflow_dags_dir.resolve()),
            "plugins_folder": str(settings.airflow_plugins_dir.resolve()),
            "executor": CELERY_EXECUTOR,
            "load_examples": "False",
            "dags_are_paused_at_creation": "True",
            "fernet_key": secret_values["fernet_key"],
            "auth_manager": AUTH_MANAGER,
            "simple_auth_manager_users": f"{settings.airflow_admin_user}:admin",
            "simple_auth_manager_passwords_file": str(layout.password_file),
            "execution_api_server_url": f"{settings.airflow_url}/execution/",
        },
        "database": {"sql_alchemy_conn": settings.airflow_sql_alchemy_conn},
        "celery": {
            "broker_url": settings.celery_broker_url,
            "result_backend": settings.celery_result_backend,
            "worker_concurrency": str(settings.airflow_worker_concurrency),
        },
        "api": {
            "host": settings.airflow_host,
            "port": str(settings.airflow_port),
            "base_url": settings.airflow_url,
            "workers": str(settings.airflow_api_workers),
            "secret_key": secret_values["secret_key"],
        },
        "api_auth": {"jwt_secret": secret_values["jwt_secret"]},
        "logging": {"base_log_folder": str(layout.task_logs)},
        # The api-server's /api/v2/monitor/health reports the scheduler's heartbeat; no
        # extra health listener is opened.
        "scheduler": {"enable_health_check": "False"},
    }


def _render_cfg(config: dict[str, dict[str, str]]) -> str:
    lines = ["# Generated by `boeflow airflow up` from the boeflow settings; rewritten on "
             "every start.", ""]
    for section, values in config.items():
        lines.append(f"[{section}]")
        # configparser interpolation: a literal % is written %%.
        lines.extend(f"{key} = {value.replace('%', '%%')}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def process_env(settings: Settings, layout: AirflowLayout,
                config: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """Environment of every Airflow process: ours (so tasks see the same ``BOEFLOW_*``
    settings and ``AIRFLOW_CONN_*`` connections), with ``AIRFLOW_HOME``/``AIRFLOW_CONFIG``
    pointing at the generated config. Inherited ``AIRFLOW__SECTION__KEY`` variables for keys
    the config sets are dropped (they would silently win over it); others pass through."""
    env = dict(os.environ)
    if config is not None:
        owned = {f"AIRFLOW__{s.upper()}__{k.upper()}" for s, keys in config.items() for k in keys}
        for name in list(env):
            if name.upper() in owned:
                del env[name]
    env.update(AIRFLOW_HOME=str(layout.home), AIRFLOW_CONFIG=str(layout.config),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


# --- processes --------------------------------------------------------------------------------

def _commands(settings: Settings) -> dict[str, list[str]]:
    airflow = airflow_executable()
    return {
        "api-server": [airflow, "api-server", "--host", settings.airflow_host,
                       "--port", str(settings.airflow_port),
                       "--workers", str(settings.airflow_api_workers)],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        # Same machine, same log folder: the api-server reads task logs from disk, so no
        # log-serving listener (it would bind every interface) is started.
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        **{worker: [airflow, "celery", "worker", "--skip-serve-logs",
                    "--concurrency", str(settings.airflow_worker_concurrency),
                    "--celery-hostname", worker_name(worker)]
           for worker in components(settings) if worker.startswith(WORKER)},
    }


def _start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot, /proc/PID/stat field 22): with the
    pid it identifies a process for good, whatever name it gives itself (Airflow renames
    its processes with setproctitle)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    rest = fields.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else None


def component_pid(layout: AirflowLayout, component: str) -> int | None:
    """The pid of our running ``component``; None when its pid file is missing or stale
    (the pid now names another process: the recorded start time differs)."""
    pidfile = layout.pidfile(component)
    pid = read_pid(pidfile)
    if pid is None:
        return None
    recorded = pidfile.read_text(encoding="ascii").split()[1:2]
    return pid if recorded and recorded[0] == _start_time(pid) else None


def _spawn(component: str, command: list[str], env: dict[str, str],
           layout: AirflowLayout) -> int:
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    with layout.logfile(component).open("ab") as log:
        log.write(f"\n--- boeflow: starting {component} at {datetime.now(UTC).isoformat()}\n"
                  .encode())
        log.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=layout.home,
                                   start_new_session=True)
    started = _start_time(process.pid) or "?"
    layout.pidfile(component).write_text(f"{process.pid} {started}\n", encoding="ascii")
    return process.pid


def _run_airflow(args: list[str], env: dict[str, str], layout: AirflowLayout,
                 what: str, timeout: float = 600.0) -> None:
    result = subprocess.run([airflow_executable(), *args], env=env, cwd=layout.home,
                            capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        error = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln),
                     lines[-1] if lines else f"exit code {result.returncode}")
        raise ServiceError(f"airflow {what} failed: {error.strip()[:300]}",
                           "\n".join(lines[-15:]))


def check_bind_address(settings: Settings) -> None:
    require_loopback("the Airflow api-server", settings.airflow_host, "BOEFLOW_AIRFLOW_HOST",
                     allow_non_loopback=settings.services_allow_non_loopback,
                     secured=True,  # every UI/API request needs a login
                     security_hint="")


def prepare(settings: Settings) -> tuple[AirflowLayout, dict[str, str]]:
    """Write AIRFLOW_HOME (config, secrets, password file); return the process environment."""
    layout = AirflowLayout.from_settings(settings)
    for directory in (layout.home, layout.run, layout.logs, layout.task_logs):
        directory.mkdir(parents=True, exist_ok=True)
    layout.home.chmod(0o700)
    for directory, name in ((settings.airflow_dags_dir, "BOEFLOW_AIRFLOW_DAGS_DIR"),
                            (settings.airflow_plugins_dir, "BOEFLOW_AIRFLOW_PLUGINS_DIR")):
        if not directory.is_dir():
            raise ServiceError(f"{name}: {directory} is not a directory")
    secret_values = ensure_secrets(layout, settings.airflow_admin_user)
    config = airflow_config(settings, layout, secret_values)
    _write_private(layout.config, _render_cfg(config))
    return layout, process_env(settings, layout, config)


def start(settings: Settings) -> list[ServiceStatus]:
    """Start PostgreSQL and Redis (if needed), migrate the metadata database, start every
    missing Airflow component, wait until all are healthy and create the LLM pool.
    Idempotent: running components are left alone."""
    check_bind_address(settings)
    postgres.start(settings)
    redis.start(settings)
    layout, env = prepare(settings)
    running = {c: component_pid(layout, c) for c in components(settings)}
    if running["api-server"] is None and port_in_use(settings.airflow_host, settings.airflow_port):
        raise ServiceError(
            f"port {settings.airflow_port} on {settings.airflow_host} is already in use by "
            "another program; free it or set BOEFLOW_AIRFLOW_PORT")
    if any(pid is None for pid in running.values()):
        _run_airflow(["db", "migrate"], env, layout, "db migrate")
        commands = _commands(settings)
        for component in components(settings):
            if running[component] is None:
                _spawn(component, commands[component], env, layout)
    statuses = _wait_healthy(settings, layout)
    ensure_pool(settings)
    return statuses


def _wait_healthy(settings: Settings, layout: AirflowLayout) -> list[ServiceStatus]:
    deadline = time.monotonic() + START_TIMEOUT_S
    statuses = status(settings)
    while time.monotonic() < deadline:
        statuses = status(settings)
        if all(s.healthy for s in statuses):
            return statuses
        for component, state in zip(components(settings), statuses, strict=True):
            if not state.running and component_pid(layout, component) is None:
                raise ServiceError(f"Airflow {component} exited during start-up "
                                   f"(log: {layout.logfile(component)})",
                                   tail(layout.logfile(component), 20))
        time.sleep(2.0)
    sick = [s for s in statuses if not s.healthy]
    component = sick[0].name.removeprefix("airflow-") if sick else "api-server"
    log_name = component.replace("worker", WORKER) if component.startswith("worker") \
        else component
    raise ServiceError(
        f"Airflow did not become healthy within {START_TIMEOUT_S:.0f}s: "
        + "; ".join(f"{s.name}: {s.detail}" for s in sick),
        tail(layout.logfile(log_name), 20))


def stop(settings: Settings) -> bool:
    """Stop every running component (their whole process groups); True if any ran."""
    layout = AirflowLayout.from_settings(settings)
    stopped = False
    extra = sorted({p.stem for p in layout.run.glob(f"{WORKER}-*.pid")} - set(COMPONENTS))
    for component in [*reversed(extra), *reversed(COMPONENTS)]:
        pid = component_pid(layout, component)
        if pid is not None:
            _terminate_group(pid)
            stopped = True
        layout.pidfile(component).unlink(missing_ok=True)
    return stopped


def _terminate_group(pid: int) -> None:
    """SIGTERM the component's process group (it was started in its own session, so the
    group holds exactly its children), then SIGKILL what is left after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    return any(proc.pgrp == pgid and proc.state != "Z" for proc in processes().values())


# --- health -----------------------------------------------------------------------------------

def _heartbeat_age(value: str | None) -> float | None:
    if not value:
        return None
    try:
        beat = datetime.fromisoformat(value)
    except ValueError:
        return None
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds()


def api_health(settings: Settings) -> dict[str, Any] | None:
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            response = client.get(f"{settings.airflow_url}/api/v2/monitor/health")
            response.raise_for_status()
            data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ping_workers(settings: Settings, timeout: float = 3.0) -> list[str]:
    """Celery node names that answer a control ``ping`` on our broker."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    app = Celery("boeflow-ping", broker=settings.celery_broker_url)
    try:
        replies = app.control.ping(timeout=timeout)
    except (OperationalError, OSError):  # broker down: nobody answers
        return []
    finally:
        app.close()
    return sorted(name for reply in replies for name, answer in reply.items()
                  if answer.get("ok") == "pong")


def status(settings: Settings) -> list[ServiceStatus]:
    """Health of each component: process alive, then the api-server's
    ``/api/v2/monitor/health`` (metadatabase, scheduler, dag-processor and triggerer
    heartbeats) and a Celery ``ping`` of the worker."""
    layout = AirflowLayout.from_settings(settings)
    url = settings.airflow_url
    health = api_health(settings)
    out: list[ServiceStatus] = []
    for component in components(settings):
        pid = component_pid(layout, component)
        name = "airflow-" + component.removeprefix("celery-")
        state = ServiceStatus(name, url, running=pid is not None,
                              detail="not running" if pid is None else f"pid {pid}")
        if pid is not None:
            _fill_health(state, component, settings, health)
        out.append(state)
    return out


def _fill_health(state: ServiceStatus, component: str, settings: Settings,
                 health: dict[str, Any] | None) -> None:
    if component.startswith(WORKER):
        answered = ping_workers(settings)
        state.healthy = worker_name(component) in answered
        state.url = f"celery://{worker_name(component)}"
        state.detail = "pong" if state.healthy else "no answer to celery ping"
        return
    if health is None:
        state.detail = f"no answer from {settings.airflow_url}/api/v2/monitor/health"
        return
    if component == "api-server":
        database = (health.get("metadatabase") or {}).get("status")
        state.healthy = database == "healthy"
        state.detail = f"metadatabase {database}"
        return
    key = component.replace("-", "_")
    entry = health.get(key) or {}
    age = _heartbeat_age(entry.get(f"latest_{key}_heartbeat"))
    state.healthy = entry.get("status") == "healthy" and age is not None \
        and age < HEARTBEAT_MAX_AGE_S
    state.detail = (f"heartbeat {age:.0f}s ago" if age is not None else "no heartbeat yet") \
        + f", {entry.get('status') or 'unknown'}"


# --- API helpers ------------------------------------------------------------------------------

@contextlib.contextmanager
def api_client(settings: Settings) -> Iterator[httpx.Client]:
    """An httpx client logged in to the local Airflow REST API as the admin user."""
    with httpx.Client(base_url=settings.airflow_url, timeout=30.0, trust_env=False) as client:
        response = client.post("/auth/token", json={"username": settings.airflow_admin_user,
                                                    "password": admin_password(settings)})
        if response.status_code not in (200, 201):
            raise ServiceError(f"Airflow refused the admin login ({response.status_code})")
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


def ensure_pool(settings: Settings) -> dict[str, Any]:
    """Create or resize the ``boeflow_llm`` pool (slots: ``BOEFLOW_AIRFLOW_LLM_POOL_SLOTS``)."""
    body = {"name": LLM_POOL, "slots": settings.airflow_llm_pool_slots,
            "description": "GPU/LLM tasks (ALIA, Aitana, bge-m3) running at once",
            "include_deferred": False}
    with api_client(settings) as client:
        current = client.get(f"/api/v2/pools/{LLM_POOL}")
        if current.status_code == 404:
            response = client.post("/api/v2/pools", json=body)
        elif current.status_code == 200 and current.json().get("slots") == body["slots"]:
            return dict(current.json())
        else:
            response = client.patch(f"/api/v2/pools/{LLM_POOL}", json=body)
        if response.status_code not in (200, 201):
            raise ServiceError(f"could not create the Airflow pool {LLM_POOL}: "
                               f"HTTP {response.status_code} {response.text[:200]}")
        return dict(response.json())
