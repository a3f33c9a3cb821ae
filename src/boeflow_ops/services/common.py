"""Shared helpers for the services that boeflow installs and runs on loopback."""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ServiceError(RuntimeError):
    """A service could not be installed, started or reached. The message is one clear line
    (plus an optional log excerpt) meant for the user, never a stack trace."""

    def __init__(self, message: str, log_excerpt: str = "") -> None:
        super().__init__(message)
        self.log_excerpt = log_excerpt


@dataclass
class ServiceStatus:
    name: str
    url: str
    running: bool
    healthy: bool = False
    version: str | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def port_in_use(host: str, port: int) -> bool:
    """True when another socket is bound to host:port (a bind attempt is more reliable than
    connecting: a listener with a full backlog does not answer connects)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def free_port() -> int:
    """A free ephemeral loopback port (chosen by the kernel, so two test sessions on one
    machine do not race for the same number). The one definition: the local api-server,
    the demo and the tests take their ports from here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1).
    Wildcards (0.0.0.0, ::), other addresses and unresolvable names are not loopback."""
    name = host.strip().strip("[]")
    if not name:
        return False
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def require_loopback(service: str, host: str, host_setting: str, *,
                     allow_non_loopback: bool, secured: bool, security_hint: str) -> None:
    """Refuse to bind ``service`` to a non-loopback address unless the operator both allows
    it (``BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK``) and configured the service's own security.
    Local services are loopback-only by construction; the error is one line."""
    if is_loopback(host):
        return
    if allow_non_loopback and secured:
        return
    missing = [] if allow_non_loopback else ["BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK=true"]
    if not secured:
        missing.append(security_hint)
    raise ServiceError(
        f"refusing to start {service} on {host}: not a loopback address; set "
        f"{host_setting}=127.0.0.1, or set {' and '.join(missing)} to expose it"
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not text.split():
        return None
    try:
        pid = int(text.split()[0])
    except ValueError:
        return None
    return pid if pid_alive(pid) else None


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_service_user(name: str) -> str | None:
    """Return the user to run services as: ``name`` (created if needed) when we are root,
    otherwise None (run as the current unprivileged user). Elasticsearch and PostgreSQL
    both refuse to run as root."""
    if not is_root():
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        return name
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ServiceError(f"cannot create service user {name!r}: useradd not found")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/bin/sh", name],
        capture_output=True, text=True, check=False,
    )
    if result.returncode not in (0, 9):  # 9: already exists (race)
        raise ServiceError(f"cannot create service user {name!r}: {result.stderr.strip()}")
    return name


def as_user(user: str | None) -> dict[str, Any]:
    """subprocess kwargs that drop root fully: uid, primary group and no extra groups
    (keeping root's group would make group permission bits apply instead of "other")."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            full = Path(root) / name
            if not full.is_symlink():
                os.chown(full, entry.pw_uid, entry.pw_gid)


def make_traversable(path: Path) -> None:
    """Let the service user reach ``path`` through its parents (o+x on each directory)."""
    current = path.resolve()
    for parent in [current, *current.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def tail(path: Path, lines: int = 20, pattern: str | None = None) -> str:
    """Last lines of a log file, optionally only those containing ``pattern``."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    if pattern:
        matching = [line for line in content if pattern in line]
        content = matching or content
    return "\n".join(line[:400] for line in content[-lines:])


@dataclass(frozen=True)
class ProcessInfo:
    state: str  # R, S, Z, … as in /proc/<pid>/stat
    ppid: int
    pgrp: int


def processes() -> dict[int, ProcessInfo]:
    """Every process of this machine (Linux ``/proc``); ones that exit meanwhile are skipped."""
    found: dict[int, ProcessInfo] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = ProcessInfo(fields[0], int(fields[1]), int(fields[2]))
        except (OSError, IndexError, ValueError):
            continue
    return found
