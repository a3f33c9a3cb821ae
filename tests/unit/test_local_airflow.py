"""The local Airflow deployment's files: generated config, secrets and the loopback rule."""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from boeflow.core.settings import Settings
from boeflow_ops.services import airflow as af
from boeflow_ops.services.common import ServiceError, is_loopback, require_loopback


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", pg_password=SecretStr("p%ss"),
                    airflow_port=18499, redis_port=6399, **kw)  # type: ignore[arg-type]


def test_prepare_writes_private_config_secrets_and_password(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout, env = af.prepare(settings)
    for path in (layout.config, layout.secrets, layout.password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(layout.home.stat().st_mode) == 0o700
    cfg = configparser.ConfigParser()
    cfg.read(layout.config)
    assert cfg["core"]["executor"] == af.CELERY_EXECUTOR
    assert cfg["core"]["dags_folder"] == str(settings.airflow_dags_dir.resolve())
    assert cfg["core"]["simple_auth_manager_passwords_file"] == str(layout.password_file)
    assert cfg["database"]["sql_alchemy_conn"] == settings.airflow_sql_alchemy_conn  # % kept
    assert cfg["celery"]["broker_url"] == "redis://127.0.0.1:6399/0"
    assert cfg["celery"]["result_backend"].startswith("db+postgresql+psycopg2://")
    assert cfg["api"]["host"] == "127.0.0.1" and cfg["api"]["port"] == "18499"
    assert cfg["core"]["execution_api_server_url"] == "http://127.0.0.1:18499/execution/"
    assert env["AIRFLOW_HOME"] == str(layout.home)
    password = af.admin_password(settings)
    assert password not in layout.config.read_text()


def test_secrets_and_password_are_generated_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout, _ = af.prepare(settings)
    first = (layout.secrets.read_text(), af.admin_password(settings))
    af.prepare(settings)
    assert (layout.secrets.read_text(), af.admin_password(settings)) == first
    other = _settings(tmp_path / "other")
    af.prepare(other)
    assert af.admin_password(other) != first[1]


def test_inherited_airflow_overrides_of_our_keys_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "7")
    monkeypatch.setenv("AIRFLOW_CONN_BOEFLOW_BOE", "http://127.0.0.1:1")
    _, env = af.prepare(_settings(tmp_path))
    assert "AIRFLOW__CORE__EXECUTOR" not in env
    assert env["AIRFLOW__CORE__PARALLELISM"] == "7"
    assert env["AIRFLOW_CONN_BOEFLOW_BOE"] == "http://127.0.0.1:1"
    assert os.environ["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_a_corrupt_secrets_file_is_one_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout, _ = af.prepare(settings)
    layout.secrets.write_text("{not json")
    with pytest.raises(ServiceError, match=r"secrets\.json is not valid JSON; delete it"):
        af.prepare(settings)


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.10", False),
    ("", False), ("no-such-host.invalid", False),
])
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_require_loopback_names_what_to_set() -> None:
    require_loopback("X", "127.0.0.1", "BOEFLOW_X_HOST", allow_non_loopback=False,
                     secured=False, security_hint="BOEFLOW_X_PASSWORD")
    with pytest.raises(ServiceError) as info:
        require_loopback("X", "0.0.0.0", "BOEFLOW_X_HOST", allow_non_loopback=False,
                         secured=False, security_hint="BOEFLOW_X_PASSWORD")
    message = str(info.value)
    assert message == ("refusing to start X on 0.0.0.0: not a loopback address; set "
                       "BOEFLOW_X_HOST=127.0.0.1, or set BOEFLOW_SERVICES_ALLOW_NON_LOOPBACK"
                       "=true and BOEFLOW_X_PASSWORD to expose it")
    with pytest.raises(ServiceError, match="or set BOEFLOW_X_PASSWORD to expose it"):
        require_loopback("X", "0.0.0.0", "BOEFLOW_X_HOST", allow_non_loopback=True,
                         secured=False, security_hint="BOEFLOW_X_PASSWORD")
    require_loopback("X", "0.0.0.0", "BOEFLOW_X_HOST", allow_non_loopback=True,
                     secured=True, security_hint="BOEFLOW_X_PASSWORD")


def test_two_workers_are_two_celery_processes_with_their_own_node_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(af, "airflow_executable", lambda: "/venv/bin/airflow")
    settings = Settings(state_dir=tmp_path, airflow_workers=2, airflow_worker_concurrency=1)
    assert af.components(settings) == (*af.COMPONENTS, "celery-worker-2")
    assert af.components(Settings(state_dir=tmp_path)) == af.COMPONENTS
    commands = af._commands(settings)
    names = {c: commands[c][commands[c].index("--celery-hostname") + 1]
             for c in ("celery-worker", "celery-worker-2")}
    assert names["celery-worker"] == af.worker_name() != names["celery-worker-2"]
    assert names["celery-worker-2"].startswith("boeflow2@")
    assert commands["celery-worker-2"][commands["celery-worker-2"].index("--concurrency") + 1] \
        == "1"
    # stop() also finds workers started with a larger BOEFLOW_AIRFLOW_WORKERS than now set.
    layout = af.AirflowLayout.from_settings(settings)
    layout.run.mkdir(parents=True)
    (layout.run / "celery-worker-2.pid").write_text("999999999 0\n")
    assert af.stop(Settings(state_dir=tmp_path)) is False
    assert not (layout.run / "celery-worker-2.pid").exists()
