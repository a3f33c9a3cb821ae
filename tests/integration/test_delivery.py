"""Publication and delivery against the real services: publish_day writes the three formats
atomically, boe-digests and the Atom feed (parsed with feedparser); deliver_day e-mails one
message per recipient list through the Airflow SMTP notifier to a real loopback SMTP server
(aiosmtpd), configured by an Airflow Connection. A refused delivery is recorded and fails the
task for Airflow to retry, and never unpublishes; the retry sends once; a rerun sends
nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import feedparser
import pytest

from boeflow import jobs
from boeflow.boe.manifest import DayManifest
from boeflow.core.settings import Settings
from boeflow.digest.publish import write_digest
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from boeflow.state.db import connect
from boeflow.state.records import day_status
from tests.support.digest_fixtures import body_text, private_database, smtp_server
from tests.unit.test_digest import _nov6, fetched  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
PREFIX = "it-delivery-"
EXCLUDED = "BOE-A-2024-22931"


@pytest.fixture()
def settings(live_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    watch = tmp_path / "watch.toml"
    watch.write_text('[[watchlist]]\nname = "Cultura"\ndepartments = ["Ministerio de Cultura"]'
                     '\nrecipients = ["cultura@example.org"]\n', encoding="utf-8")
    with private_database(live_settings) as private:
        yield private.model_copy(update={
            "data_dir": tmp_path / "data", "es_index_prefix": PREFIX,
            "digest_recipients": ["lectores@example.org"],
            "digest_watchlists_file": watch, "digest_mail_from": "boeflow@example.org"})


def test_publish_then_deliver_with_a_refused_first_attempt(
        settings: Settings, fetched: dict[str, DayManifest],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from boeflow.airflow.notify import smtp_sender
    from boeflow.digest.watchlists import load_watchlists, run_watchlists

    client = get_client(settings)
    drop_indices(client, IndexNames(PREFIX))  # wildcard deletes are refused by the cluster
    draft = _nov6(fetched)
    draft.watchlists = run_watchlists(draft, load_watchlists(settings.digest_watchlists_file),
                                      {}, None)
    store = jobs.raw_store(settings)
    write_digest(store, draft, draft=True)
    day = "2024-11-06"
    review = {"decision": "approved", "reviewer": "revisor", "excluir": [EXCLUDED],
              "draft_hash": draft.draft_hash}
    result = jobs.publish_day(day, settings, review)
    assert result.published and result.version == 1 and result.excluded == [EXCLUDED]
    for fmt in ("md", "html", "json"):
        assert Path(result.full_paths[fmt]).is_file()
    assert not [p for p in store.list_files("digests") if ".part-" in p]
    feed = feedparser.parse(Path(store.path("digests/feed.xml")).read_bytes())
    assert not feed.bozo and [e.title for e in feed.entries] == [
        "BOE del 06/11/2024: 237 elementos, 1 excluidos"]
    assert client.get(index=f"{PREFIX}boe-digests", id=day)["_source"]["excluded"] == [EXCLUDED]
    items = client.count(index=f"{PREFIX}boe-digests", query={"term": {"kind": "item"}})
    assert items["count"] == 237
    # The Kibana "digests" saved search uses only fields of the real boe-digests mapping.
    from boeflow.index.kibana import load_objects, referenced_fields

    fields = referenced_fields(load_objects())["boe-digests"]
    mapping = client.indices.get_field_mapping(index=f"{PREFIX}boe-digests",
                                               fields=sorted(fields))
    found = {name for idx in mapping.values() for name in idx["mappings"]}
    assert fields <= found and {"kind", "approved_by", "n_excluded"} <= fields
    # The same review again publishes nothing new.
    again = jobs.publish_day(day, settings, {**review, "reviewer": "otro"})
    assert again.published is False and again.reason == "already_published"
    assert again.version == 1
    with smtp_server() as (port, inbox):
        monkeypatch.setenv("AIRFLOW_CONN_BOEFLOW_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}))
        send = smtp_sender("boeflow_smtp", settings.digest_mail_from, {})
        inbox.refuse = True
        with pytest.raises(jobs.TaskFailed, match="delivery of 2024-11-06 v1 failed"):
            jobs.deliver_day(day, settings, send)
        with connect(settings) as conn:
            status = day_status(conn, date(2024, 11, 6))
        assert status is not None
        assert status["day"]["status"] == "published"  # never unpublished
        assert {d["channel"]: (d["status"], d["attempts"], d["recipient"])
                for d in status["deliveries"]} == {
            "mail:digest": ("failed", 1, "lectores@example.org"),
            "mail:watchlist:Cultura": ("failed", 1, "cultura@example.org")}
        assert inbox.messages == []
        inbox.refuse = False
        sent = jobs.deliver_day(day, settings, send)
        assert sorted(sent.sent) == ["mail:digest:lectores@example.org",
                                        "mail:watchlist:Cultura:cultura@example.org"]
        assert len(inbox.messages) == 2
        again = jobs.deliver_day(day, settings, send)
        assert again.sent == [] and len(again.skipped) == 2
        assert len(inbox.messages) == 2
    by_rcpt = {tuple(r): m for r, m in inbox.messages}
    whole = by_rcpt[("lectores@example.org",)]
    assert whole["Subject"] == "BOE del 06/11/2024: resumen diario (237 elementos)"
    assert whole["From"] == "boeflow@example.org"
    watch = by_rcpt[("cultura@example.org",)]
    assert watch["Subject"].startswith("BOE del 06/11/2024 · Vigilancia «Cultura»:")
    for message in (whole, watch):
        html = body_text(message, "html")
        text = body_text(message, "plain")
        assert "BOE-A-2024-22928" in html and "BORRADOR" not in html
        assert EXCLUDED not in html.split('id="excluidos"')[0]
        assert EXCLUDED not in text.split("Excluidos por el revisor")[0]
    with connect(settings) as conn:
        final = day_status(conn, date(2024, 11, 6))
    assert final is not None
    assert {d["channel"]: (d["status"], d["attempts"]) for d in final["deliveries"]} == {
        "mail:digest": ("sent", 2), "mail:watchlist:Cultura": ("sent", 2)}
    # One Message-ID per day, version, channel and recipient.
    assert len({m["Message-ID"] for _, m in inbox.messages}) == 2
    assert all(m["Message-ID"].startswith("<boeflow.20241106.v1.") for _, m in inbox.messages)
