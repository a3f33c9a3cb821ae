"""The daily DAG end to end, as users run it: Airflow (metadata in the real PostgreSQL) runs
boe_daily for 2024-11-06 against the recorded BOE replayed on loopback, the real
Elasticsearch and the smoke models; the human approval is answered through Airflow's REST API
(`PATCH …/hitlDetails`) on a real `airflow api-server` process, with one item excluded and one
summary corrected; the digest is published (Markdown, HTML, JSON, boe-digests, Atom feed),
e-mailed to a real loopback SMTP server and recorded in PostgreSQL. A second run publishes
nothing new, sends nothing and does no model work; a rejection publishes and sends nothing;
a day without a BOE ends green."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import feedparser
import pytest

from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow.state.db import connect
from boeflow.state.records import day_status
from boeflow_ops.airflow_api import ApiServer, ReviewClient, airflow, airflow_env
from tests.conftest import SAMPLES
from tests.support.cli import run_boeflow
from tests.support.digest_fixtures import body_text, private_database, smtp_server

pytestmark = pytest.mark.e2e
PREFIX = "e2e-dag-"
REVIEWER, PASSWORD = "revisora.garcia", "clave-de-prueba"
EXCLUDED = "BOE-A-2024-22930"
EDITED = "BOE-A-2024-22928"
CORRECTION = ("El Real Decreto-ley 6/2024, de 5 de noviembre, adopta medidas urgentes de "
              "respuesta ante los daños causados por la DANA entre el 28 de octubre y el 4 de "
              "noviembre de 2024.")


@pytest.fixture()
def state_settings(live_settings: Settings) -> Iterator[Settings]:
    with private_database(live_settings) as settings:
        yield settings


def _start_dag(day: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    binary = Path(sys.executable).with_name("airflow")
    with log.open("wb") as out:
        return subprocess.Popen([str(binary), "dags", "test", "boe_daily", day],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    code = proc.wait(timeout=1200)
    assert code == 0, log.read_text(errors="replace")[-4000:]


def _states(env: dict[str, str], day: str) -> set[str]:
    runs = airflow(["dags", "list-runs", "boe_daily", "--output", "json"], env)
    assert runs.returncode == 0, runs.stderr[-2000:]
    listing = next(line for line in reversed(runs.stdout.splitlines()) if line.startswith("[{"))
    return {run["state"] for run in json.loads(listing) if run["logical_date"].startswith(day)}


def test_boe_daily_reviewed_digest(state_settings: Settings, smoke_models_dir: Path,
                                   tmp_path: Path) -> None:
    settings = state_settings
    client = get_client(settings)
    drop_indices(client, IndexNames(PREFIX))  # wildcard deletes are refused by the cluster
    data = tmp_path / "data"
    watchlists = tmp_path / "watchlists.toml"
    watchlists.write_text('[[watchlist]]\nname = "DANA"\nkeywords = ["DANA"]\n'
                          'recipients = ["dana@example.org"]\n', encoding="utf-8")
    with BoeServer(SAMPLES) as boe, smtp_server() as (smtp_port, inbox):
        env = airflow_env(settings, tmp_path / "airflow", {REVIEWER: PASSWORD}, {
            "BOEFLOW_PROFILE": "smoke",
            # `airflow dags test` runs the DAG unserialized, where Airflow 3.3 cannot look up
            # a Deadline Alert (it passes the alert itself as its id); the reminder is tested
            # on the real deployment (tests/e2e/test_workbench.py).
            "BOEFLOW_DIGEST_REVIEW_DEADLINE": "off",
            "BOEFLOW_SMOKE_MODELS_DIR": str(smoke_models_dir),
            "BOEFLOW_DATA_DIR": str(data),
            "BOEFLOW_ES_URL": settings.es_url,
            "BOEFLOW_ES_INDEX_PREFIX": PREFIX,
            "BOEFLOW_PG_PORT": str(settings.pg_port),
            "BOEFLOW_PG_DATABASE": settings.pg_database,
            "BOEFLOW_BOE_BASE_URL": boe.url,
            "BOEFLOW_BOE_RATE_LIMIT": "0",
            "BOEFLOW_BOE_MAX_ATTEMPTS": "2",
            "BOEFLOW_BOE_BACKOFF_INITIAL": "0.01",
            "BOEFLOW_DIGEST_RECIPIENTS": '["lectores@example.org", "equipo@example.org"]',
            "BOEFLOW_DIGEST_WATCHLISTS_FILE": str(watchlists),
            "AIRFLOW_CONN_BOEFLOW_SMTP": json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
                "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}),
        })
        migrated = airflow(["db", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        # Runs left in this metadata database by earlier sessions (an approval still
        # waiting) must not answer for this one.
        airflow(["dags", "delete", "boe_daily", "--yes"], env)
        with ApiServer(env, tmp_path / "api-server.log") as api:
            reviewer = ReviewClient(api.url, REVIEWER, PASSWORD)
            # --- first run: approve with one exclusion and one correction ------------------
            log = tmp_path / "run1.log"
            proc = _start_dag("2024-11-06", env, log)
            pending = reviewer.wait_pending("boe_daily", 1200, alive=lambda: proc.poll() is None)
            assert pending["subject"] == "Revisar el resumen del BOE del 2024-11-06"
            assert EDITED in pending["body"] and "238 elementos" in pending["body"]
            assert set(pending["options"]) == {"Publicar", "Rechazar"}
            answered = reviewer.answer(pending, "Publicar", {
                "excluir": [EXCLUDED], "correcciones": {EDITED: CORRECTION},
                "notas": {EDITED: "Resumen reescrito por la revisora"},
                "nota": "Revisado en la prueba de extremo a extremo"})
            assert answered["responded_by"]["name"] == REVIEWER
            _finish(proc, log)

            digest_dir = data / "raw" / "digests" / "2024" / "11" / "06"
            current = json.loads((digest_dir / "current.json").read_text(encoding="utf-8"))
            assert current["version"] == 1
            published = json.loads((digest_dir / "v1" / "digest.json").read_text(
                encoding="utf-8"))
            markdown = (digest_dir / "v1" / "digest.md").read_text(encoding="utf-8")
            html = (digest_dir / "v1" / "digest.html").read_text(encoding="utf-8")
            assert published["status"] == "published" and published["version"] == 1
            ids = [i["boe_id"] for s in published["sections"] for d in s["departments"]
                   for i in (*d["items"], *d["compact"])]
            assert EXCLUDED not in ids and len(ids) == 237
            assert published["excluded"][0]["boe_id"] == EXCLUDED
            assert published["decision"]["reviewer"] == REVIEWER
            assert published["decision"]["decision"] == "approved"
            edited = next(i for s in published["sections"] for d in s["departments"]
                          for i in d["items"] if i["boe_id"] == EDITED)
            assert edited["summary_es"]["resumen"] == CORRECTION
            assert edited["review"]["edits"][0]["by"] == REVIEWER
            assert edited["review"]["note"] == "Resumen reescrito por la revisora"
            assert f"corregido por {REVIEWER}" in markdown.replace("\\", "")
            assert "BORRADOR" not in html and "Excluidos por el revisor (1)" in html
            assert EXCLUDED not in html.split('id="excluidos"')[0]
            # 237 of the 238 items are not in the recorded samples: incidencias (fetch).
            fetch_incidencias = [n for n in published["incidencias"] if n["stage"] == "fetch"]
            assert len(fetch_incidencias) == 237
            # The draft the reviewer saw is kept, watermarked.
            draft = (digest_dir / "draft" / "digest.html").read_text(encoding="utf-8")
            assert "BORRADOR — pendiente de revisión" in draft

            feed = feedparser.parse((data / "raw" / "digests" / "feed.xml").read_bytes())
            assert not feed.bozo and len(feed.entries) == 1
            assert feed.entries[0].title.startswith("BOE del 06/11/2024")

            record = client.get(index=f"{PREFIX}boe-digests", id="2024-11-06")["_source"]
            assert record["approved_by"] == REVIEWER and record["excluded"] == [EXCLUDED]
            assert not client.exists(index=f"{PREFIX}boe-digests", id=f"2024-11-06:{EXCLUDED}")

            with connect(settings) as conn:
                status = day_status(conn, date(2024, 11, 6))
            assert status is not None
            assert status["day"]["status"] == "published"
            tasks = {t["task"]: t["status"] for t in status["tasks"]}
            assert tasks == {"fetch": "success", "index": "success", "enrich": "success",
                             "review": "success", "build_digest": "success",
                             "approve": "success", "publish": "success",
                             "deliver": "success"}, tasks
            assert status["documents"]["documents"] == 238
            assert status["documents"]["fetch_failed"] == 237
            assert status["decisions"][0]["reviewer"] == REVIEWER
            assert status["decisions"][0]["excluded"] == [EXCLUDED]
            assert [d["version"] for d in status["digests"]] == [1]
            assert {(d["channel"], d["recipient"]): d["status"] for d in status["deliveries"]} \
                == {("mail:digest", "equipo@example.org"): "sent",
                    ("mail:digest", "lectores@example.org"): "sent",
                    ("mail:watchlist:DANA", "dana@example.org"): "sent"}

            assert len(inbox.messages) == 3  # one per recipient and list
            by_rcpt = {tuple(sorted(r)): m for r, m in inbox.messages}
            whole = by_rcpt[("lectores@example.org",)]
            assert by_rcpt[("equipo@example.org",)]["Subject"] == whole["Subject"]
            assert whole["Subject"] == "BOE del 06/11/2024: resumen diario (237 elementos)"
            assert "Vigilancia «DANA»" in by_rcpt[("dana@example.org",)]["Subject"]
            for _, message in inbox.messages:
                html_part = body_text(message, "html")
                text_part = body_text(message, "plain")
                assert EXCLUDED not in html_part.split('id="excluidos"')[0]
                assert CORRECTION in html_part and "BORRADOR" not in html_part
                assert EDITED in text_part

            indexed_at = client.get(index=f"{PREFIX}boe-documents", id=EDITED)[
                "_source"]["indexed_at"]

            # --- second run: nothing new, no mail, no model work ---------------------------
            boe.clear_log()
            log = tmp_path / "run2.log"
            proc = _start_dag("2024-11-06", env, log)
            _finish(proc, log)
            assert [r for r in boe.requests() if r.status == 200] == []
            assert client.get(index=f"{PREFIX}boe-documents", id=EDITED)[
                "_source"]["indexed_at"] == indexed_at
            assert len(inbox.messages) == 3
            with connect(settings) as conn:
                again = day_status(conn, date(2024, 11, 6))
            assert again is not None and [d["version"] for d in again["digests"]] == [1]
            approve = next(t for t in again["tasks"] if t["task"] == "approve")
            assert approve["status"] == "skipped"
            assert approve["detail"]["reason"] == "already_published"
            assert _states(env, "2024-11-06") == {"success"}

            # --- a rejection publishes and sends nothing -----------------------------------
            log = tmp_path / "run3.log"
            proc = _start_dag("2024-11-13", env, log)
            pending = reviewer.wait_pending("boe_daily", 1200, alive=lambda: proc.poll() is None)
            reviewer.answer(pending, "Rechazar", {"excluir": [], "correcciones": {},
                                                  "notas": {}, "nota": "Faltan resúmenes"})
            _finish(proc, log)
            assert not (data / "raw" / "digests" / "2024" / "11" / "13" / "current.json").exists()
            assert len(inbox.messages) == 3
            with connect(settings) as conn:
                rejected = day_status(conn, date(2024, 11, 13))
            assert rejected is not None
            assert rejected["digests"] == [] and rejected["day"]["digest_status"] == "rejected"
            assert rejected["decisions"][0]["decision"] == "rejected"
            shown = run_boeflow(["digest", "show", "--date", "2024-11-13"], env=env,
                                script=True, timeout=120)
            assert shown.returncode == 0, shown.stderr
            assert "pendiente" in shown.stdout

            # --- a day without a BOE (Sunday): green, "no publication" ---------------------
            log = tmp_path / "run4.log"
            proc = _start_dag("2024-11-10", env, log)
            _finish(proc, log)
            assert _states(env, "2024-11-10") == {"success"}
            with connect(settings) as conn:
                sunday = day_status(conn, date(2024, 11, 10))
            assert sunday is not None and sunday["day"]["status"] == "no_publication"
            none_digest = json.loads((data / "raw" / "digests" / "2024" / "11" / "10" / "draft" /
                                      "digest.json").read_text(encoding="utf-8"))
            assert none_digest["status"] == "no_publication"
            assert none_digest["incidencias"][0]["stage"] == "day"
