"""Answer the digest approval through Airflow's REST API — the same code path as a reviewer
clicking in "Required Actions" — and a minimal local ``airflow api-server`` for the demo and
the end-to-end test (loopback only; the full multi-process deployment is ``docker/`` and the
local Airflow of issue 12).

Users come from Airflow's SimpleAuthManager (``[core] simple_auth_manager_users`` and a
passwords file); the reviewer's name is what Airflow stores as ``responded_by_user``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from boeflow.core.paths import repo_dir
from boeflow.core.settings import Settings
from boeflow_ops.services.common import free_port


class AirflowApiError(RuntimeError):
    """The api-server did not start or refused a request (one clear line)."""


def airflow_env(settings: Settings, home: Path, users: dict[str, str],
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow processes sharing one metadata database (boeflow's
    PostgreSQL) and this repository's DAGs; ``users``: name → password (admins)."""
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps(users), encoding="utf-8")
    passwords.chmod(0o600)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow_sql_alchemy_conn,
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo_dir("dags")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in users),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET",
                                                        "boeflow-local-" + home.name),
        **(extra or {}),
    }


def airflow(args: list[str], env: dict[str, str], timeout: float = 900
            ) -> subprocess.CompletedProcess[str]:
    import sys

    binary = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@dataclass
class ApiServer:
    """``airflow api-server`` on 127.0.0.1 as a child process (stopped on exit)."""

    env: dict[str, str]
    log: Path
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        import sys

        self.port = self.port or free_port()
        binary = Path(sys.executable).with_name("airflow")
        env = {**self.env, "AIRFLOW__API__BASE_URL": self.url}
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(binary), "api-server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "1"], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AirflowApiError(f"airflow api-server exited ({self._proc.returncode}); "
                                      f"see {self.log}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.__exit__(None, None, None)
        raise AirflowApiError(f"airflow api-server not healthy after 180 s; see {self.log}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


class ReviewClient:
    """A reviewer logged in to the api-server: the one client of the approval step (the demo,
    the DAG end-to-end test and the local deployment's test support use it)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        response = httpx.post(f"{self.base_url}/auth/token", timeout=30,
                              json={"username": username, "password": password})
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"login as {username} refused: HTTP {response.status_code}")
        self.token = str(response.json()["access_token"])
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def pending(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        """Approval requests of ``dag_id`` (of one run, or of all: ``~``) still waiting for an
        answer."""
        response = httpx.get(
            f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails",
            headers=self.headers, timeout=30)
        if response.status_code != 200:
            raise AirflowApiError(f"listing approvals failed: HTTP {response.status_code}")
        return [d for d in response.json()["hitl_details"] if not d.get("response_received")]

    def wait_pending(self, dag_id: str, timeout: float, alive: Any = None, *,
                     run_id: str = "~", interval: float = 2) -> dict[str, Any]:
        """The first approval request of ``dag_id`` (or of its run ``run_id``); ``alive``: a
        callable saying whether the run can still ask (checked between polls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.pending(dag_id, run_id)
            if found:
                return found[0]
            if alive is not None and not alive():
                raise AirflowApiError(f"{dag_id} ended before asking for approval")
            time.sleep(interval)
        raise AirflowApiError(f"no approval request from {dag_id} within {timeout:.0f} s")

    def answer(self, detail: dict[str, Any], option: str,
               params: dict[str, Any]) -> dict[str, Any]:
        """``PATCH …/taskInstances/{task_id}/{map_index}/hitlDetails``. Like the form in the
        UI, the answer names the draft it was shown: ``draft_hash`` is the form's prefilled
        value unless ``params`` gives one."""
        params = dict(params)
        if "draft_hash" not in params:
            shown = (detail.get("params") or {}).get("draft_hash")
            params["draft_hash"] = shown.get("value") if isinstance(shown, dict) else shown
        ti = detail["task_instance"]
        url = (f"{self.base_url}/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/"
               f"taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails")
        response = httpx.patch(url, headers=self.headers, timeout=30,
                               json={"chosen_options": [option], "params_input": params})
        if response.status_code != 200:
            raise AirflowApiError(f"answer refused: HTTP {response.status_code} "
                                  f"{response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result
