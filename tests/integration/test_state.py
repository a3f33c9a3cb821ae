"""PostgreSQL state on the real server: forward-only migrations applied idempotently
(`boeflow db upgrade` twice is a no-op), what each step records, `boeflow status`; and two
awkward days run through boeflow.jobs against the replay server and the real services: a
day without a BOE and a day with one corrupt item XML both end green with the right
incidencias."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from boeflow import jobs
from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer, Served
from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow.state.db import StateError, connect, migrations, state, upgrade
from boeflow.state.records import day_status
from tests.conftest import SAMPLES
from tests.support.cli import run_boeflow
from tests.support.digest_fixtures import private_database
from tests.support.tcp_proxy import StallingProxy
from tests.unit.test_digest import _nov6, fetched  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
PREFIX = "it-state-"


@pytest.fixture()
def state_settings(live_settings: Settings) -> Iterator[Settings]:
    with private_database(live_settings) as settings:
        yield settings


def _cli(args: list[str], settings: Settings, timeout: float = 120,
         **env_extra: str) -> subprocess.CompletedProcess[str]:
    return run_boeflow(args, script=True, timeout=timeout, extra={
        "BOEFLOW_PG_DATABASE": settings.pg_database, "BOEFLOW_PG_PORT": str(settings.pg_port),
        **env_extra})


def test_db_upgrade_twice_is_a_no_op(state_settings: Settings) -> None:
    first = _cli(["db", "upgrade"], state_settings)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(m.name for m in migrations())
    second = _cli(["db", "upgrade"], state_settings)
    assert second.returncode == 0 and second.stdout.strip() == "schema up to date"
    with connect(state_settings) as conn:
        assert upgrade(conn) == []
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [r["version"] for r in rows] == [m.version for m in migrations()]
        tables = {r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert tables >= {"schema_migrations", "days", "task_runs", "documents", "enrichments",
                      "review_decisions", "digests", "deliveries"}


def test_migration_files_are_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "003_c.sql").write_text("SELECT 1;")
    with pytest.raises(StateError, match="expected number 002"):
        migrations(tmp_path)


def test_unreachable_postgres_is_one_clear_line(live_settings: Settings) -> None:
    with pytest.raises(StateError, match=r"PostgreSQL is not reachable at 127\.0\.0\.1:1 "):
        connect(live_settings.model_copy(update={"pg_port": 1}))


def test_connections_carry_the_documented_timeouts(state_settings: Settings) -> None:
    settings = state_settings.model_copy(update={"pg_statement_timeout": 7.5,
                                                 "pg_idle_in_transaction_timeout": 90.0})
    with connect(settings) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[name]  # type: ignore[index]
                 for name in ("statement_timeout", "idle_in_transaction_session_timeout")}
        assert conn.info.get_parameters()["connect_timeout"] == "10"
        # The client's own socket: keepalives and a user timeout against a vanished peer.
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12_500
        finally:
            sock.close()  # a duplicate of the connection's descriptor
    assert shown["statement_timeout"] == "7500ms"
    assert shown["idle_in_transaction_session_timeout"] == "90s"


@pytest.mark.timeout(60)  # before the fix: a hang
def test_a_slow_statement_is_cancelled_by_the_statement_timeout(
        state_settings: Settings) -> None:
    settings = state_settings.model_copy(update={"pg_statement_timeout": 1.0})
    started = time.monotonic()
    with pytest.raises(StateError, match=r"ran longer than 1 s and was cancelled "
                                         r"\(BOEFLOW_PG_STATEMENT_TIMEOUT\)"), \
            state(settings) as conn:
        conn.execute("SELECT pg_sleep(30)")
    assert time.monotonic() - started < 10


@pytest.mark.timeout(60)  # before the fix: a hang
def test_a_postgres_stalled_mid_session_is_one_line_within_the_deadline(
        state_settings: Settings) -> None:
    """Finding 8: the server (here a proxy in front of it) accepts the query and never
    answers. Before, the client waited forever: no statement timeout can fire on a server
    that never received the statement, and the kernel keeps acknowledging keepalives."""
    with StallingProxy(state_settings.pg_port) as proxy:
        settings = state_settings.model_copy(update={"pg_port": proxy.port,
                                                     "pg_statement_timeout": 2.0})
        started = time.monotonic()
        with pytest.raises(StateError) as raised, state(settings) as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
            proxy.stall()
            conn.execute("SELECT 2")
        elapsed = time.monotonic() - started
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"PostgreSQL at 127.0.0.1:{proxy.port} did not answer within "
                              "7 s (BOEFLOW_PG_STATEMENT_TIMEOUT + 5 s)"), message
    assert 6.5 < elapsed < 20, elapsed


@pytest.mark.parametrize("command", [["status", "--date", "2024-11-06"],
                                     ["digest", "show", "--date", "2024-11-06"]])
def test_cli_on_a_stalled_postgres_exits_with_one_line(
        state_settings: Settings, command: list[str]) -> None:
    """`boeflow status` and `digest show` against a PostgreSQL that stops answering after
    the migrations (at the day's first query): one line on stderr, exit 1, within the
    documented deadline; before, they hung (> 150 s in the finding)."""
    with connect(state_settings) as conn:
        upgrade(conn)
        conn.execute("INSERT INTO days (day, status) VALUES ('2024-11-06', 'pending')")
    with StallingProxy(state_settings.pg_port, stall_on=b"FROM days WHERE day") as proxy:
        started = time.monotonic()
        result = _cli(command, state_settings, timeout=60, BOEFLOW_PG_PORT=str(proxy.port),
                      BOEFLOW_PG_STATEMENT_TIMEOUT="2")
        elapsed = time.monotonic() - started
        assert proxy.stalled.is_set()
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not answer within 7 s" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30, elapsed


def test_publish_on_a_postgres_stalled_mid_publication_is_one_line(
        state_settings: Settings, fetched: dict[str, DayManifest],  # noqa: F811
        tmp_path: Path) -> None:
    """Finding 8's `digest publish`: PostgreSQL stops answering when the published version
    is recorded (after the files, Elasticsearch and the feed). Before, the command hung."""
    from boeflow.digest.publish import write_digest

    settings = state_settings.model_copy(update={"data_dir": tmp_path / "data",
                                                 "es_index_prefix": PREFIX})
    write_digest(jobs.raw_store(settings), _nov6(fetched), draft=True)
    with StallingProxy(settings.pg_port, stall_on=b"INSERT INTO digests") as proxy:
        started = time.monotonic()
        result = _cli(["digest", "publish", "--date", "2024-11-06", "--without-review"],
                      settings, timeout=120, BOEFLOW_PG_PORT=str(proxy.port),
                      BOEFLOW_PG_STATEMENT_TIMEOUT="2", BOEFLOW_PG_CONNECT_TIMEOUT="2",
                      BOEFLOW_DATA_DIR=str(settings.data_dir),
                      BOEFLOW_ES_INDEX_PREFIX=PREFIX)
        elapsed = time.monotonic() - started
        assert proxy.stalled.is_set()
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: publish 2024-11-06: PostgreSQL at 127.0.0.1:"), lines[0]
    assert "did not answer within 7 s" in lines[0] and "Traceback" not in result.stderr
    assert elapsed < 60, elapsed
    drop_indices(get_client(settings), IndexNames(PREFIX))


def _replay(settings: Settings, server: BoeServer, data: Path, models: Path) -> Settings:
    # A new Settings (not model_copy) so that the smoke profile picks the smoke models.
    return Settings(profile="smoke", smoke_models_dir=models, data_dir=data,
                    samples_dir=SAMPLES, es_url=settings.es_url, es_index_prefix=PREFIX,
                    pg_port=settings.pg_port, pg_database=settings.pg_database,
                    boe_base_url=server.url, boe_rate_limit=0.0, boe_max_attempts=1,
                    boe_backoff_initial=0.01)


def test_day_without_boe_is_green_with_a_no_publication_record(
        state_settings: Settings, smoke_models_dir: Path, tmp_path: Path) -> None:
    with BoeServer(SAMPLES) as server:
        settings = _replay(state_settings, server, tmp_path / "data", smoke_models_dir)
        day = "2024-11-10"  # a Sunday: the API answers 404
        assert jobs.fetch_day(day, settings).status == "no_publication"
        assert jobs.index_day(day, settings).note == "no publication"
        assert jobs.enrich_day(day, settings).note == "no publication"
        jobs.review_day(day, settings)
        built = jobs.build_digest_day(day, settings)
        assert built.status == "no_publication" and built.needs_review is False
        assert jobs.publish_day(day, settings).reason == "no_publication"
    with connect(settings) as conn:
        status = day_status(conn, date(2024, 11, 10))
    assert status is not None and status["day"]["status"] == "no_publication"
    assert {t["status"] for t in status["tasks"]} == {"success"}
    shown = _cli(["status", "--date", day, "--json"], settings)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["day"]["status"] == "no_publication"


def test_corrupt_item_xml_is_an_incidencia_and_the_day_stays_green(
        state_settings: Settings, smoke_models_dir: Path, tmp_path: Path) -> None:
    client = get_client(state_settings)
    drop_indices(client, IndexNames(PREFIX))  # wildcard deletes are refused by the cluster
    good = "BOE-A-2024-23543"
    corrupt = "BOE-A-2024-23620"
    body = (SAMPLES / "documents" / f"{corrupt}.xml").read_bytes()
    with BoeServer(SAMPLES) as server:
        # Served truncated in the middle of an element: well-formed XML no longer.
        server.overrides[f"/diario_boe/xml.php?id={corrupt}"] = Served(
            body[: len(body) // 2], "application/xml")
        settings = _replay(state_settings, server, tmp_path / "data", smoke_models_dir)
        day = "2024-11-13"
        fetched = jobs.fetch_day(day, settings, sections=["1", "3"])
        assert fetched.status == "published"
        # The fetcher refuses the malformed body (it never reaches the store); the rest of
        # the day goes on.
        assert fetched.failed >= 1
        indexed = jobs.index_day(day, settings)
        # the good item and BOE-A-2024-23622 (section III, recorded since issue 20)
        assert indexed.documents == 2 and indexed.failed == {}
        jobs.review_day(day, settings)
        built = jobs.build_digest_day(day, settings)
    assert built.status == "draft" and built.needs_review is True
    with connect(settings) as conn:
        status = day_status(conn, date(2024, 11, 13))
    assert status is not None
    assert {t["task"]: t["status"] for t in status["tasks"]} == {
        "fetch": "success", "index": "success", "review": "success", "build_digest": "success"}
    failures = {f["boe_id"]: f for f in status["failures"]}
    assert failures[corrupt]["stage"] == "fetch"
    assert "malformed XML" in failures[corrupt]["error"]
    draft = json.loads((tmp_path / "data" / "raw" / "digests" / "2024" / "11" / "13" / "draft" /
                        "digest.json").read_text(encoding="utf-8"))
    incidencias = {n["boe_id"]: n for n in draft["incidencias"]}
    assert incidencias[corrupt]["stage"] == "fetch"
    assert "malformed XML" in incidencias[corrupt]["reason"]
    assert good not in incidencias
    assert client.exists(index=f"{PREFIX}boe-documents", id=good)


def test_a_day_processed_with_the_cli_steps_is_recorded_and_approvable(
        state_settings: Settings, smoke_models_dir: Path, tmp_path: Path) -> None:
    """Issue 17 point 2: `fetch`, `index`, `enrich`, `digest build` record the day as the
    DAG's tasks do, so `digest show` and `digest approve` work without Airflow (on main,
    `digest show` answered "nothing recorded")."""
    client = get_client(state_settings)
    drop_indices(client, IndexNames(PREFIX))
    client.close()
    day = "2024-11-13"
    with BoeServer(SAMPLES) as server:
        env = {**os.environ, "BOEFLOW_PROFILE": "smoke",
               "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models_dir),
               "BOEFLOW_DATA_DIR": str(tmp_path / "data"), "BOEFLOW_SAMPLES_DIR": str(SAMPLES),
               "BOEFLOW_ES_INDEX_PREFIX": PREFIX, "BOEFLOW_PG_DATABASE": state_settings.pg_database,
               "BOEFLOW_PG_PORT": str(state_settings.pg_port), "BOEFLOW_BOE_BASE_URL": server.url,
               "BOEFLOW_BOE_RATE_LIMIT": "0", "BOEFLOW_BOE_MAX_ATTEMPTS": "1",
               "BOEFLOW_DIGEST_RECIPIENTS": "[]"}
        env.pop("BOEFLOW_RAW_STORE_URL", None)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return run_boeflow(args, env=env, script=True, timeout=600)

        fetched = cli("fetch", "--date", day, "--sections", "1")
        assert "Traceback" not in fetched.stderr, fetched.stderr
        for step in (["index", "--date", day], ["enrich", "--date", day]):
            done = cli(*step)
            assert "Traceback" not in done.stderr and "not recorded" not in done.stderr, \
                done.stderr
        built = cli("digest", "build", "--date", day, "--format", "json")
        assert built.returncode == 0, built.stderr
    shown = cli("digest", "show", "--date", day, "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["status"] == "awaiting_review" and summary["published_version"] is None
    assert summary["draft_hash"] == json.loads(built.stdout)["draft_hash"]
    with connect(state_settings) as conn:
        status = day_status(conn, date(2024, 11, 13))
    assert status is not None
    tasks = {t["task"]: t["status"] for t in status["tasks"]}
    assert {"fetch", "index", "enrich", "review", "build_digest"} <= set(tasks), tasks
    assert status["documents"]["fetched"] >= 1 and status["documents"]["indexed"] >= 1
    approved = cli("digest", "approve", "--date", day, "--draft-hash", summary["draft_hash"],
                   "--reviewer", "ana", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["version"] == 1
    after = json.loads(cli("digest", "show", "--date", day, "--json").stdout)
    assert after["status"] == "published" and after["published_version"] == 1
