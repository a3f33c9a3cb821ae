"""Publishing exactly what the reviewer approved, once (issue 17, findings 1, 2, 6, 7 and the
republish part of 9), against the real services: PostgreSQL (a private database),
Elasticsearch (a private prefix), the raw store on disk and a loopback SMTP server
(aiosmtpd). The day is the recorded 2024-11-06 draft (238 items).

The kill test runs the real ``boeflow digest approve`` in a subprocess and kills it with
SIGKILL at random moments; after each rerun the day must be exactly one complete version in
the files, Elasticsearch, the feed and PostgreSQL, with exactly one e-mail per recipient per
version at the SMTP server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import feedparser
import pytest

from boeflow import jobs
from boeflow.boe.manifest import DayManifest
from boeflow.core.settings import Settings
from boeflow.digest.model import Digest
from boeflow.digest.publish import read_pointer, write_digest
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow.state.db import connect
from boeflow.state.records import day_status
from tests.support.cli import SCRIPT, run_boeflow
from tests.support.digest_fixtures import Inbox, private_database, smtp_server
from tests.unit.test_digest import _nov6, fetched  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
PREFIX = "it-publication-"
DAY = "2024-11-06"
WHEN = date(2024, 11, 6)
A, B, C = "BOE-A-2024-22928", "BOE-A-2024-22930", "BOE-A-2024-22931"
READERS = ["ana@example.org", "luis@example.org"]


@dataclass
class Env:
    settings: Settings
    draft: Digest
    data: Path

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    def cli(self, *args: str, smtp_port: int | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_boeflow(args, env=self.env(smtp_port), script=True, timeout=timeout)

    def command(self, *args: str) -> list[str]:
        return [str(SCRIPT), *args]

    def env(self, smtp_port: int | None = None) -> dict[str, str]:
        s = self.settings
        env = {**os.environ, "BOEFLOW_PG_DATABASE": s.pg_database,
               "BOEFLOW_PG_PORT": str(s.pg_port), "BOEFLOW_DATA_DIR": str(self.data),
               "BOEFLOW_ES_INDEX_PREFIX": PREFIX, "BOEFLOW_DIGEST_RECIPIENTS": "[]",
               "BOEFLOW_DIGEST_MAIL_FROM": "boeflow@example.org"}
        env.pop("BOEFLOW_RAW_STORE_URL", None)
        if smtp_port is not None:
            env["BOEFLOW_DIGEST_RECIPIENTS"] = json.dumps(READERS)
            env["AIRFLOW_CONN_BOEFLOW_SMTP"] = json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
                "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}})
        return env


@pytest.fixture()
def env(live_settings: Settings, tmp_path: Path,
        fetched: dict[str, DayManifest]) -> Iterator[Env]:  # noqa: F811
    client = get_client(live_settings)
    drop_indices(client, IndexNames(PREFIX))  # wildcard deletes are refused by the cluster
    client.close()
    with private_database(live_settings) as private:
        settings = private.model_copy(update={
            "data_dir": tmp_path / "data", "es_index_prefix": PREFIX, "raw_store_url": None,
            "digest_recipients": [], "digest_mail_from": "boeflow@example.org"})
        draft = _nov6(fetched)
        write_digest(jobs.raw_store(settings), draft, draft=True)
        yield Env(settings, draft, tmp_path / "data")


def approve(env: Env, **extra: Any) -> dict[str, Any]:
    return {"decision": "approved", "reviewer": "revisora", "draft_hash": env.draft.draft_hash,
            **extra}


def one_version(env: Env, excluded: list[str]) -> int:
    """The day is exactly one complete version everywhere; returns it."""
    pointer = read_pointer(jobs.raw_store(env.settings), WHEN)
    assert pointer is not None
    version = pointer.version
    folder = env.raw / "digests" / "2024" / "11" / "06" / f"v{version}"
    published = json.loads((folder / "digest.json").read_text(encoding="utf-8"))
    assert published["version"] == version and published["status"] == "published"
    assert [e["boe_id"] for e in published["excluded"]] == excluded
    markdown = (folder / "digest.md").read_text(encoding="utf-8")
    html = (folder / "digest.html").read_text(encoding="utf-8")
    for text in (markdown, html):
        for boe_id in excluded:
            assert boe_id in text
        assert f"({len(excluded)})" in text or not excluded
    assert not list(env.raw.rglob("*.part-*"))
    client = get_client(env.settings)
    try:
        record = client.get(index=f"{PREFIX}boe-digests", id=DAY)["_source"]
        assert record["version"] == version and record["excluded"] == excluded
        items = client.count(index=f"{PREFIX}boe-digests", query={"bool": {"filter": [
            {"term": {"kind": "item"}}, {"term": {"version": version}}]}})["count"]
        total = client.count(index=f"{PREFIX}boe-digests",
                             query={"term": {"kind": "item"}})["count"]
        assert items == total == 238 - len(excluded)
    finally:
        client.close()
    feed = feedparser.parse((env.raw / "digests" / "feed.xml").read_bytes())
    assert not feed.bozo and len(feed.entries) == 1
    assert feed.entries[0].id.endswith(f"/2024/11/06/v{version}")
    # the default feed id is a urn: the entry links the BOE's page of the day (absolute)
    assert feed.entries[0].link == "https://www.boe.es/boe/dias/2024/11/06/"
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None
    assert status["day"]["status"] == "published"
    assert status["day"]["digest_status"] == "published"
    digests = status["digests"]
    assert [d["status"] for d in digests] == ["published"] * len(digests)
    assert digests[-1]["version"] == version and digests[-1]["excluded"] == len(excluded)
    return version


# --- findings 1 and 2: the decision is validated against the draft ----------------------------

def test_finding_1_hostile_ids_are_applied_or_refuse_everything(env: Env) -> None:
    """On main, these ids were ignored (all 238 items published) while the record listed
    them as excluded and edited."""
    result = jobs.publish_day(DAY, env.settings, approve(
        env, excluir=[f"{B}, {C}", "boe-a-2024-22929"],
        correcciones={A.replace("-", "\u2011") + ":VA": "El Reial decret llei 6/2024 adopta "
                      "mesures urgents davant de la DANA."}))
    assert result.published and result.version == 1
    assert result.excluded == [B, C, "BOE-A-2024-22929"] and result.edited == [A]
    one_version(env, [B, C, "BOE-A-2024-22929"])
    published = json.loads((env.raw / result.paths["json"]).read_text(encoding="utf-8"))
    item = next(i for s in published["sections"] for d in s["departments"]
                for i in (*d["items"], *d["compact"]) if i["boe_id"] == A)
    assert item["summary_va"]["resumen"].startswith("El Reial decret llei 6/2024 adopta")
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None
    assert status["decisions"][0]["excluded"] == [B, C, "BOE-A-2024-22929"]
    assert list(status["decisions"][0]["edits"]) == [f"{A}:va"]
    # One unknown id refuses the whole decision: nothing new published, nothing recorded.
    for bad, line in (({"excluir": [B, "BOE-A-2024-1"]}, "BOE-A-2024-1 is not an item"),
                      ({"correcciones": {f"{A}:es": "x"}}, "only language suffix"),
                      ({"correcciones": {A: " "}}, "empty correction")):
        with pytest.raises(jobs.TaskFailed, match=line) as info:
            jobs.publish_day(DAY, env.settings, approve(env, **bad))
        assert "\n" not in str(info.value)
    assert one_version(env, [B, C, "BOE-A-2024-22929"]) == 1
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and len(status["decisions"]) == 1
    publish = next(t for t in status["tasks"] if t["task"] == "publish")
    assert publish["status"] == "failed" and "empty correction" in publish["error"]


def test_finding_2_an_approval_publishes_only_the_draft_it_names(
        env: Env, fetched: dict[str, DayManifest]) -> None:  # noqa: F811
    """Run A's reviewer saw a draft; the day was rebuilt while A waited; A's "Publicar"
    must not publish the new draft."""
    seen = approve(env, excluir=[B])
    rebuilt = _nov6(fetched)
    rebuilt.sections = rebuilt.sections[:1]  # a different draft now on disk
    from boeflow.digest.build import draft_hash

    rebuilt.draft_hash = draft_hash(rebuilt)
    write_digest(jobs.raw_store(env.settings), rebuilt, draft=True)
    with pytest.raises(jobs.TaskFailed, match="draft_hash: the decision answers draft"):
        jobs.publish_day(DAY, env.settings, seen)
    with pytest.raises(jobs.TaskFailed, match="does not name the draft"):
        jobs.publish_day(DAY, env.settings, {**seen, "draft_hash": None})
    assert read_pointer(jobs.raw_store(env.settings), WHEN) is None
    assert not (env.raw / "digests" / "2024" / "11" / "06" / "v1").exists()
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and status["decisions"] == [] and status["digests"] == []


# --- finding 9: a republish of an unchanged day is a no-op -------------------------------------

def test_finding_9_republishing_an_unchanged_day_publishes_nothing(env: Env) -> None:
    first = jobs.publish_day(DAY, env.settings, approve(env, excluir=[B]))
    assert first.version == 1
    with smtp_server() as (port, inbox):
        send = _sender(env, port)
        settings = env.settings.model_copy(update={"digest_recipients": READERS})
        assert len(jobs.deliver_day(DAY, settings, send).sent) == 2
        for answer in (approve(env, excluir=[B]), approve(env, excluir=[B], reviewer="otro"),
                       None):
            again = jobs.publish_day(DAY, env.settings, answer)
            assert again.published is False and again.reason == "already_published"
            assert again.version == 1
            assert jobs.deliver_day(DAY, settings, send).sent == []
        assert len(inbox.messages) == 2
    assert one_version(env, [B]) == 1
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and len(status["decisions"]) == 1
    feed = feedparser.parse((env.raw / "digests" / "feed.xml").read_bytes())
    assert [e.id for e in feed.entries] == ["urn:boeflow:digests/2024/11/06/v1"]
    # A different decision is a new version, once.
    second = jobs.publish_day(DAY, env.settings, approve(env, excluir=[B, C]))
    assert second.version == 2
    assert jobs.publish_day(DAY, env.settings, approve(env, excluir=[C, B])).reason == \
        "already_published"
    assert one_version(env, [B, C]) == 2


def _sender(env: Env, port: int) -> Any:
    from boeflow.airflow.notify import smtp_sender

    os.environ["AIRFLOW_CONN_BOEFLOW_SMTP"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}})
    return smtp_sender("boeflow_smtp", env.settings.digest_mail_from, {})


# --- findings 6 and 7: a failed or interrupted publication ------------------------------------

class Crash(BaseException):
    """Stands for the process dying at that point (not an Exception: nothing handles it)."""


@pytest.mark.parametrize("point", ["write_digest", "switch_version", "index_digest",
                                   "write_feed", "finish_publication"])
def test_finding_6_a_crash_at_each_step_then_a_rerun_finishes_the_same_version(
        env: Env, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from boeflow.digest import publish as publish_module
    from boeflow.state import records

    assert jobs.publish_day(DAY, env.settings, approve(env, excluir=[B])).version == 1
    module = records if point == "finish_publication" else publish_module
    real = getattr(module, point)

    def crash(*args: Any, **kwargs: Any) -> Any:
        if point == "write_digest":
            real(*args, **kwargs)  # the files are written, then the process dies
        raise Crash(point)

    monkeypatch.setattr(module, point, crash)
    with pytest.raises(Crash):
        jobs.publish_day(DAY, env.settings, approve(env, excluir=[B, C]))
    monkeypatch.setattr(module, point, real)
    pointer = read_pointer(jobs.raw_store(env.settings), WHEN)
    assert pointer is not None
    # Readers get the old version or the new one, complete.
    assert pointer.version == (1 if point in ("write_digest", "switch_version") else 2)
    # The rerun: with the same answer, or with none (`boeflow digest publish`).
    answer = approve(env, excluir=[B, C]) if point in ("write_digest", "index_digest") else None
    result = jobs.publish_day(DAY, env.settings, answer)
    assert result.published and result.version == 2
    assert one_version(env, [B, C]) == 2
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and len(status["decisions"]) == 2
    assert [d["version"] for d in status["digests"]] == [1, 2]


def test_finding_7_disk_full_or_es_refusal_leaves_the_published_version(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from boeflow.boe import store as store_module
    from boeflow.digest import publish as publish_module

    assert jobs.publish_day(DAY, env.settings, approve(env, excluir=[B])).version == 1
    real_fsync = os.fsync
    calls = {"n": 0}

    def full(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second of the version's three files: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(jobs.TaskFailed) as info:
        jobs.publish_day(DAY, env.settings, approve(env, excluir=[B, C]))
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    line = str(info.value)
    assert "\n" not in line and "disk full" in line and "published version (v1) is unchanged" \
        in line
    assert one_version_but_failed(env, [B]) == 1
    # Elasticsearch refusing the new version (after the switch): one line, the day failed,
    # and the rerun finishes v2.
    from elastic_transport import ApiResponseMeta, HttpHeaders
    from elasticsearch import ApiError

    meta = ApiResponseMeta(status=429, http_version="1.1", headers=HttpHeaders(),
                           duration=0.0, node=None)  # type: ignore[arg-type]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ApiError("es_rejected_execution_exception", meta=meta, body={})

    monkeypatch.setattr(publish_module, "index_digest", refuse)
    with pytest.raises(jobs.TaskFailed, match=r"es_rejected_execution_exception.*digest "
                       r"publish --date 2024-11-06"):
        jobs.publish_day(DAY, env.settings, approve(env, excluir=[B, C]))
    monkeypatch.undo()
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and status["day"]["digest_status"] == "publish_failed"
    assert status["digests"][-1]["status"] == "publishing"
    assert "es_rejected_execution_exception" in status["digests"][-1]["error"]
    assert jobs.publish_day(DAY, env.settings, None).version == 2
    assert one_version(env, [B, C]) == 2
    # Reviewer input over its limits is refused before anything is written.
    with pytest.raises(jobs.TaskFailed, match=rf"correcciones\[{A}\]: 10485760 characters"):
        jobs.publish_day(DAY, env.settings, approve(env, correcciones={A: "x" * 10 * 2**20}))
    with pytest.raises(jobs.TaskFailed, match="nota: 10485760 characters"):
        jobs.publish_day(DAY, env.settings, approve(env, nota="x" * 10 * 2**20))
    assert one_version(env, [B, C]) == 2


def one_version_but_failed(env: Env, excluded: list[str]) -> int:
    """After a failed publication that never switched: the old version is whole; the day
    says publish_failed."""
    pointer = read_pointer(jobs.raw_store(env.settings), WHEN)
    assert pointer is not None
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None and status["day"]["digest_status"] == "publish_failed"
    assert [d["status"] for d in status["digests"]] == ["published", "publishing"]
    assert "disk full" in status["digests"][-1]["error"]
    folder = env.raw / "digests" / "2024" / "11" / "06" / f"v{pointer.version}"
    published = json.loads((folder / "digest.json").read_text(encoding="utf-8"))
    assert [e["boe_id"] for e in published["excluded"]] == excluded
    return pointer.version


# --- point 2: the CLI path ------------------------------------------------------------------

def test_cli_approve_and_show(env: Env) -> None:
    shown = env.cli("digest", "show", "--date", DAY, "--json")
    assert shown.returncode == 1 and "nothing recorded" in shown.stderr
    rejected = env.cli("digest", "approve", "--date", DAY, "--draft-hash", env.draft.draft_hash,
                       "--reject", "--reviewer", "ana", "--json")
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(rejected.stdout)["reason"] == "rejected"
    summary = json.loads(env.cli("digest", "show", "--date", DAY, "--json").stdout)
    assert summary["status"] == "rejected" and summary["published_version"] is None
    assert summary["draft_hash"] == env.draft.draft_hash
    for args, line in (
            (["--draft-hash", "f" * 64], "draft_hash: the decision answers draft"),
            (["--exclude", "BOE-A-2024-1"], "BOE-A-2024-1 is not an item"),
            (["--correct", f"{A}= "], "empty correction"),
            (["--correct", f"{A}"], "expected ID=TEXT")):
        base = [] if args[0] == "--draft-hash" else ["--draft-hash", env.draft.draft_hash]
        bad = env.cli("digest", "approve", "--date", DAY, *base, *args)
        assert bad.returncode == 1, bad.stdout
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and line in lines[0] and "Traceback" not in bad.stderr
    done = env.cli("digest", "approve", "--date", DAY, "--draft-hash", env.draft.draft_hash,
                   "--exclude", B.lower(), "--correct", f"{A}:VA=Resum corregit.",
                   "--note", "revisado", "--reviewer", "ana", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["published"] and result["version"] == 1 and result["excluded"] == [B]
    summary = json.loads(env.cli("digest", "show", "--date", DAY, "--json").stdout)
    assert {k: summary[k] for k in ("draft_hash", "status", "published_version", "excluded",
                                    "edited")} == {
        "draft_hash": env.draft.draft_hash, "status": "published", "published_version": 1,
        "excluded": [B], "edited": [A]}
    again = env.cli("digest", "approve", "--date", DAY, "--draft-hash", env.draft.draft_hash,
                    "--exclude", B, "--correct", f"{A}:va=Resum corregit.", "--note",
                    "revisado", "--reviewer", "ana", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["reason"] == "already_published"
    assert one_version(env, [B]) == 1
    text = env.cli("digest", "show", "--date", DAY)
    assert text.returncode == 0 and "versión 1" in text.stdout and B in text.stdout


# --- the kill test ----------------------------------------------------------------------------

KILLS = 30


STEPS = ("started", "decided", "files", "switched", "indexed", "published", "sending",
         "sent")


def _step(env: Env, version: int) -> int:
    """How far a run publishing ``version`` has got: an index into STEPS (-1: not started)."""
    import psycopg

    folder = env.raw / "digests" / "2024" / "11" / "06" / f"v{version}"
    with connect(env.settings) as conn:
        try:
            task = conn.execute("SELECT status FROM task_runs WHERE day = %s AND task = "
                                "'publish'", (WHEN,)).fetchone()
            row = conn.execute("SELECT status FROM digests WHERE day = %s AND version = %s",
                               (WHEN, version)).fetchone()
            mails = conn.execute("SELECT count(*) FILTER (WHERE status = 'sent') AS sent, "
                                 "count(*) AS n FROM deliveries WHERE day = %s AND "
                                 "version = %s", (WHEN, version)).fetchone()
        except psycopg.errors.UndefinedTable:  # the first run has not created the schema
            return -1
    if mails and mails["sent"]:
        return STEPS.index("sent")
    if mails and mails["n"]:
        return STEPS.index("sending")
    if row and row["status"] == "published":
        return STEPS.index("published")
    pointer = read_pointer(jobs.raw_store(env.settings), WHEN)
    if pointer is not None and pointer.version == version:
        client = get_client(env.settings)
        try:
            found = client.options(ignore_status=404).get(index=f"{PREFIX}boe-digests", id=DAY)
        finally:
            client.close()
        indexed = (found.get("_source") or {}).get("version") == version
        return STEPS.index("indexed" if indexed else "switched")
    if (folder / "digest.md").exists():
        return STEPS.index("files")
    if row:
        return STEPS.index("decided")
    return STEPS.index("started") if task and task["status"] == "running" else -1


def test_kill_9_of_digest_approve_at_random_points(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round approves a new decision with ``boeflow digest approve`` in a subprocess
    and SIGKILLs it at a random point: a random step of the publication (STEPS: decided,
    files written, pointer switched, indexed, published, e-mails being sent…) plus a random
    0-200 ms, so that every stage is hit, in between too. Then it reruns the same command
    (in this process: the same CLI function, without paying the interpreter's start
    again) and checks that the day is exactly one complete version everywhere, with one
    e-mail per recipient per version."""
    from typer.testing import CliRunner

    from boeflow.cli import app
    from boeflow.core.settings import get_settings

    seed = int(os.environ.get("BOEFLOW_KILL_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    ids = [i.boe_id for i in env.draft.all_items() if i.boe_id != A]
    phases: Counter[str] = Counter()
    in_window: set[tuple[str, tuple[str]]] = set()
    with smtp_server() as (port, inbox):
        for name, value in env.env(port).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

        def args(n: int) -> list[str]:
            return ["digest", "approve", "--date", DAY, "--draft-hash", env.draft.draft_hash,
                    "--exclude", ids[n], "--reviewer", "ana", "--json"]

        def killed(n: int, target: int | None) -> str:
            """Run round ``n`` in a subprocess; SIGKILL it a random instant (0-200 ms) after
            it reaches step ``target`` of STEPS (None: let it finish). Returns the step it
            had reached when it died."""
            proc = subprocess.Popen(env.command(*args(n)), env=env.env(port),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if target is not None:
                while proc.poll() is None and _step(env, n + 1) < target:
                    time.sleep(0.02)
                try:
                    proc.wait(rng.uniform(0, 0.2))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=120)
            if target is None:
                assert proc.returncode == 0, f"seed {seed}: {err}"
                assert json.loads(out)["version"] == n + 1
            reached = _step(env, n + 1)
            if proc.returncode != 0 and reached >= STEPS.index("sending"):
                # Killed after the SMTP server accepted a message and before its "sent" row
                # committed? SMTP has no idempotency: that one message is sent again by the
                # rerun (same Message-ID). Counted, so that only these may be duplicates.
                with connect(env.settings) as conn:
                    pending = {r["recipient"] for r in conn.execute(
                        "SELECT recipient FROM deliveries WHERE day = %s AND version = %s "
                        "AND status = 'sending'", (WHEN, n + 1)).fetchall()}
                got = {r[0] for r, m in inbox.messages if f".v{n + 1}." in m["Message-ID"]}
                in_window.update((f"v{n + 1}", (r,)) for r in pending & got)
            return "finished" if proc.returncode == 0 else STEPS[reached] if reached >= 0 \
                else "not started"

        def rerun(n: int) -> None:
            result = CliRunner().invoke(app, args(n))
            assert result.exit_code == 0, (seed, n, result.output, result.exception)
            assert json.loads(result.stdout)["version"] == n + 1

        killed(0, None)  # v1, uninterrupted
        one_version(env, [ids[0]])
        spent: Counter[str] = Counter()
        for n in range(1, KILLS + 1):
            t0 = time.monotonic()
            phases[killed(n, rng.randrange(len(STEPS)))] += 1
            t1 = time.monotonic()
            rerun(n)
            t2 = time.monotonic()
            assert one_version(env, [ids[n]]) == n + 1, f"seed {seed}, kill {n}"
            spent.update({"killed run": t1 - t0, "rerun": t2 - t1,
                          "checks": time.monotonic() - t2})
            per_version = Counter((m["Message-ID"].split(".")[2], tuple(r))
                                  for r, m in inbox.messages)
            assert per_version == {(f"v{v}", (rcpt,)): 2 if (f"v{v}", (rcpt,)) in in_window
                                   else 1 for v in range(1, n + 2)
                                   for rcpt in READERS}, f"seed {seed}, kill {n}"
            by_id = Counter((m["Message-ID"], tuple(r)) for r, m in inbox.messages)
            assert len(by_id) == 2 * (n + 1)  # a resent message keeps its Message-ID
        assert isinstance(inbox, Inbox)
    with connect(env.settings) as conn:
        status = day_status(conn, WHEN)
    assert status is not None
    assert len(status["decisions"]) == KILLS + 1  # one row per decision, whatever the kills
    assert [d["version"] for d in status["digests"]] == list(range(1, KILLS + 2))
    assert {(d["version"], d["recipient"]): d["status"] for d in status["deliveries"]} == {
        (v, r): "sent" for v in range(1, KILLS + 2) for r in READERS}
    print(f"kill test seed {seed}: steps reached at the kill {dict(phases)}; killed between "
          f"SMTP acceptance and its record: {len(in_window)}; "
          f"time spent {({k: round(v, 1) for k, v in spent.items()})}")
    # The random points were spread over the publication's steps.
    assert len(set(phases) & set(STEPS)) >= 4, (seed, phases)
