"""Run the official Elasticsearch integ-test distribution (from Maven Central) on loopback.

The distribution has no bundled JDK: 8.x runs on JDK 17, 9.x needs JDK 21+. It lacks the
``rest-root`` module, so ``GET /`` answers 405; version and health come from
``/_nodes/_local`` and ``/_cluster/health``, which exist in every distribution.

``BOEFLOW_ES_NODES=2`` (or ``boeflow services start --es-nodes 2``) runs a real cluster of
that many nodes from the same distribution: node 1 (master-eligible + data) answers at the
port of ``BOEFLOW_ES_URL``, node k at that port + k - 1, each with its own transport port
(HTTP + 100), data and log directories. The extra nodes are data nodes: a cluster needs
three master-eligible nodes to survive the loss of one, so with two only the first may
hold the master role (losing the second turns the cluster yellow, not headless).

Security is off (the test distribution, no TLS): every node binds loopback only, and a
non-loopback ``BOEFLOW_ES_URL`` host is refused before anything starts. Deleting indices
needs their exact names (``action.destructive_requires_name``).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from boeflow.core.settings import Settings, redact_url
from boeflow.core.versions import elastic_version
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

MAVEN_GROUP = "org.elasticsearch.distribution.integ-test-zip"
MAVEN_ARTIFACT = "elasticsearch"
START_TIMEOUT_S = 180.0


TRANSPORT_OFFSET = 100


@dataclass(frozen=True)
class EsLayout:
    version: str
    home: Path  # extracted distribution
    data: Path
    logs: Path
    pidfile: Path
    host: str
    port: int
    node: int = 1

    @property
    def transport_port(self) -> int:
        return self.port + TRANSPORT_OFFSET

    @property
    def node_name(self) -> str:
        return f"boeflow-{self.node}"

    @classmethod
    def from_settings(cls, settings: Settings, version: str | None = None,
                      node: int = 1) -> EsLayout:
        """Node 1 keeps the single-node paths; node k > 1 gets its own port (+k-1), data,
        logs and pid file, all from the same extracted distribution."""
        version = version or elastic_version()
        parts = urlsplit(settings.es_url)
        root = settings.state_dir / "elasticsearch"
        suffix = "" if node == 1 else f"-node{node}"
        return cls(
            version=version,
            home=root / f"elasticsearch-{version}",
            data=root / f"data{suffix}",
            logs=root / f"logs{suffix}",
            pidfile=root / f"elasticsearch{suffix}.pid",
            host=parts.hostname or "127.0.0.1",
            port=(parts.port or 9200) + node - 1,
            node=node,
        )


MAX_NODES = 5


def node_layouts(settings: Settings, count: int | None = None) -> list[EsLayout]:
    return [EsLayout.from_settings(settings, node=n)
            for n in range(1, (count or settings.es_nodes) + 1)]


def check_loopback(layout: EsLayout, settings: Settings) -> None:
    """The managed Elasticsearch runs without security (the test distribution, no TLS), so
    it never listens beyond loopback, whatever ``BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK`` says:
    refused before anything is installed or started."""
    require_loopback(
        "Elasticsearch", layout.host, "BOEFLOW_ES_URL",
        allow_non_loopback=settings.services_allow_non_loopback, secured=False,
        security_hint="a secured Elasticsearch of your own in BOEFLOW_ES_URL (the local one "
        "runs without security)")


def required_java_major(version: str) -> int:
    return 21 if int(version.split(".")[0]) >= 9 else 17


_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java_home: Path) -> int | None:
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False)
    match = _JAVA_VERSION.search(result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java_home(settings: Settings, version: str) -> Path:
    """The JDK to run this Elasticsearch version: the first usable one named explicitly
    (``BOEFLOW_ES_JAVA_HOME``, then ``ES_JAVA_HOME``), else the newest one found under the
    JVM directories or ``JAVA_HOME``; a clear error when none is recent enough."""
    need = required_java_major(version)
    explicit = [Path(p) for p in (settings.es_java_home, os.environ.get("ES_JAVA_HOME")) if p]
    discovered: list[Path] = []
    search = os.environ.get("BOEFLOW_JVM_DIRS", "/usr/lib/jvm")
    for jvm_dir in (Path(d) for d in search.split(os.pathsep) if d):
        if jvm_dir.is_dir():
            discovered.extend(sorted(p for p in jvm_dir.iterdir()
                                     if p.is_dir() and not p.is_symlink()))
    if os.environ.get("JAVA_HOME"):
        discovered.append(Path(os.environ["JAVA_HOME"]))
    found: list[tuple[int, Path]] = []
    for home in explicit + discovered:
        major = java_major(home)
        if major is not None:
            found.append((major, home))
    usable = [(m, h) for m, h in found if m >= need]
    if not usable:
        seen = ", ".join(f"{h} (Java {m})" for m, h in found) or "none"
        raise ServiceError(
            f"Elasticsearch {version} needs a JDK {need}+, found: {seen}; "
            "install one or set BOEFLOW_ES_JAVA_HOME"
        )
    chosen = next((h for _, h in usable if h in explicit), None)
    return chosen or max(usable, key=lambda item: item[0])[1]


def maven_repo() -> Path:
    return Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))


def maven_zip_path(version: str) -> Path:
    return (maven_repo() / MAVEN_GROUP.replace(".", "/") / MAVEN_ARTIFACT / version
            / f"{MAVEN_ARTIFACT}-{version}.zip")


def fetch_distribution(version: str) -> Path:
    """Resolve the integ-test zip through Maven (cached in ~/.m2)."""
    archive = maven_zip_path(version)
    if archive.exists():
        return archive
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed to download Elasticsearch; apt-get install maven")
    coords = f"{MAVEN_GROUP}:{MAVEN_ARTIFACT}:{version}:zip"
    result = subprocess.run(
        # maven.repo.local: Java's user.home ignores $HOME, so name the repository we read.
        [mvn, "-q", "-B", "-Dstyle.color=never", f"-Dmaven.repo.local={maven_repo()}",
         "dependency:get", f"-Dartifact={coords}", "-Dtransitive=false"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 or not archive.exists():
        lines = [ln.strip() for ln in (result.stdout + result.stderr).splitlines()
                 if "ERROR" in ln] or ["no output"]
        raise ServiceError(f"could not download {coords} from Maven Central: {lines[0][:300]}")
    return archive


def extract_distribution(archive: Path, layout: EsLayout) -> None:
    if (layout.home / "bin" / "elasticsearch").exists():
        return
    target_root = layout.home.parent
    target_root.mkdir(parents=True, exist_ok=True)
    staging = target_root / f".extract-{layout.version}"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            out = zf.extract(info, staging)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                Path(out).chmod(mode | stat.S_IRUSR)
    extracted = staging / f"elasticsearch-{layout.version}"
    extracted.rename(layout.home)  # atomic: a half-extracted tree never has the final name
    shutil.rmtree(staging, ignore_errors=True)


def _client() -> httpx.Client:
    return httpx.Client(timeout=5.0, trust_env=False)


def status(settings: Settings) -> ServiceStatus:
    layout = EsLayout.from_settings(settings)
    url = settings.es_url.rstrip("/")
    try:
        with _client() as client:
            nodes = client.get(f"{url}/_nodes/_local", params={"filter_path": "nodes.*.version"})
            nodes.raise_for_status()
            versions = [n["version"] for n in nodes.json()["nodes"].values()]
            health = client.get(f"{url}/_cluster/health").json()
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        pid = read_pid(layout.pidfile)
        detail = f"not reachable at {url} ({type(exc).__name__})"
        return ServiceStatus("elasticsearch", url, running=pid is not None, detail=detail)
    colour = health.get("status", "unknown")
    nodes_up = int(health.get("number_of_nodes", 0))
    detail = f"cluster {colour}" + (f", {nodes_up} nodes" if nodes_up != 1 else "")
    return ServiceStatus(
        "elasticsearch", url, running=True, healthy=colour in ("green", "yellow"),
        version=versions[0] if versions else None, detail=detail,
        extra={"pinned": layout.version, "nodes": str(nodes_up)},
    )


def _wait_healthy(settings: Settings, layout: EsLayout, timeout: float,
                  nodes: int = 1) -> ServiceStatus:
    deadline = time.monotonic() + timeout
    last = status(settings)
    while time.monotonic() < deadline:
        last = status(settings)
        if last.healthy and int(last.extra.get("nodes", "0")) >= nodes:
            return last
        time.sleep(1.0)
    raise ServiceError(
        f"Elasticsearch did not become healthy with {nodes} node(s) within {timeout:.0f}s at "
        f"{redact_url(settings.es_url)}",
        tail(layout.logs / "boeflow.log", 20),
    )


def _node_options(layout: EsLayout, nodes: list[EsLayout]) -> list[str]:
    """``-E`` options of one node; a single node uses single-node discovery."""
    options = {
        "xpack.security.enabled": "false",  # loopback only, see check_loopback
        "network.host": layout.host,
        "http.port": str(layout.port),
        "transport.port": str(layout.transport_port),
        "path.data": str(layout.data),
        "path.logs": str(layout.logs),
        "cluster.name": "boeflow",
        "node.name": layout.node_name,
        # Small dev disks must not flip indices to read-only under the tests.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        # Deleting indices needs their names: no wildcard or _all deletes by accident.
        "action.destructive_requires_name": "true",
    }
    if len(nodes) == 1:
        options["discovery.type"] = "single-node"
    else:
        options["discovery.seed_hosts"] = ",".join(
            f"{n.host}:{n.transport_port}" for n in nodes)
        options["node.roles"] = "master,data" if layout.node == 1 else "data"
        if layout.node == 1:
            options["cluster.initial_master_nodes"] = layout.node_name
    return [arg for key, value in options.items() for arg in ("-E", f"{key}={value}")]


def start(settings: Settings) -> ServiceStatus:
    """Install (once) and start Elasticsearch (``es_nodes`` nodes); a no-op for the nodes of
    ours that already run. Non-loopback addresses are refused before anything starts."""
    nodes = node_layouts(settings)
    for layout in nodes:
        check_loopback(layout, settings)
    layout = nodes[0]
    current = status(settings)
    running = [read_pid(n.pidfile) is not None for n in nodes]
    if current.healthy and all(running) and int(current.extra.get("nodes", "1")) >= len(nodes):
        return _guard_deletes(settings, current)
    if not running[0] and port_in_use(layout.host, layout.port):
        if current.healthy and len(nodes) == 1:
            return current  # an Elasticsearch started elsewhere (e.g. docker) is fine to use
        raise ServiceError(
            f"port {layout.port} on {layout.host} is already in use by another program; "
            "free it or set BOEFLOW_ES_URL to another port"
        )
    for node, is_running in zip(nodes[1:], running[1:], strict=True):
        if not is_running and (port_in_use(node.host, node.port)
                               or port_in_use(node.host, node.transport_port)):
            raise ServiceError(
                f"port {node.port} or {node.transport_port} on {node.host} (node "
                f"{node.node}) is already in use by another program; free it or set "
                "BOEFLOW_ES_URL to another port")
    java_home = find_java_home(settings, layout.version)
    archive = fetch_distribution(layout.version)
    extract_distribution(archive, layout)
    user = ensure_service_user(settings.service_user)
    for node in nodes:
        for directory in (node.data, node.logs):
            directory.mkdir(parents=True, exist_ok=True)
    layout.home.joinpath("config", "jvm.options.d").mkdir(parents=True, exist_ok=True)
    if user:
        make_traversable(layout.home.parent)
        chown_tree(layout.home.parent, user)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ES_JAVA_HOME": str(java_home),
        "ES_JAVA_OPTS": f"-Xms{settings.es_heap} -Xmx{settings.es_heap}",
        "HOME": str(layout.home),
        "LANG": "C.UTF-8",
    }
    for node, is_running in zip(nodes, running, strict=True):
        if is_running:
            continue
        command = [str(node.home / "bin" / "elasticsearch"), "-d", "-p", str(node.pidfile),
                   *_node_options(node, nodes)]
        result = subprocess.run(command, env=env, **as_user(user), capture_output=True,
                                text=True, check=False, cwd=node.home,
                                timeout=START_TIMEOUT_S)
        if result.returncode != 0:
            excerpt = (tail(node.logs / "boeflow.log", 15, "ERROR")
                       or (result.stdout + result.stderr))
            first = next((ln for ln in (result.stderr + result.stdout).splitlines()
                          if ln.strip()), f"exit code {result.returncode}")
            raise ServiceError(f"Elasticsearch {node.version} node {node.node} failed to start:"
                               f" {first[:300]}", excerpt[-3000:])
    return _guard_deletes(settings, _wait_healthy(settings, layout, START_TIMEOUT_S,
                                                  nodes=len(nodes)))


def _guard_deletes(settings: Settings, current: ServiceStatus) -> ServiceStatus:
    """Also on a node started before this setting existed: deletes need exact index names
    (a persistent cluster setting, so it holds across restarts)."""
    url = settings.es_url.rstrip("/")
    try:
        with _client() as client:
            client.put(f"{url}/_cluster/settings", json={
                "persistent": {"action.destructive_requires_name": True}}).raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceError(f"could not set action.destructive_requires_name on "
                           f"{redact_url(settings.es_url)}: {type(exc).__name__}") from None
    return current


def stop_node(layout: EsLayout, timeout: float = 60.0) -> bool:
    """Stop one node of ours; True if it was running."""
    pid = read_pid(layout.pidfile)
    if pid is None:
        layout.pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and read_pid(layout.pidfile) == pid:
        time.sleep(0.3)
    if read_pid(layout.pidfile) == pid:
        os.kill(pid, 9)
    layout.pidfile.unlink(missing_ok=True)
    return True


def stop(settings: Settings, timeout: float = 60.0) -> bool:
    """Stop our Elasticsearch nodes (all of them, whatever ``es_nodes`` says now); True if
    one was running."""
    stopped = [stop_node(layout, timeout) for layout in reversed(node_layouts(settings,
                                                                              MAX_NODES))]
    return any(stopped)
