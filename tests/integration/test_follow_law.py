"""Follow-a-law watchlists (issue 22): a watchlist on Ley 39/2015 puts RDL 6/2024 (which adds
its disposición adicional 9) in that recipient's e-mail, with the amendment card, captured on
a real loopback SMTP server (aiosmtpd) through the Airflow SMTP notifier; a recipient
following a law nobody touched that day gets nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from boeflow import jobs
from boeflow.boe.consolidada import ConsolidadaClient
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.digest.publish import write_digest
from boeflow.digest.render import render_html
from boeflow.digest.watchlists import WatchlistError, load_watchlists, run_watchlists
from boeflow.enrich.links import links_for
from boeflow.index.client import drop_indices, get_client
from boeflow.index.mapping import IndexNames
from tests.conftest import DOCUMENTS, SAMPLES
from tests.support.digest_fixtures import body_text, private_database, smtp_server
from tests.unit.test_digest import SUMMARY_22928, _day, _record, fetched  # noqa: F401

pytestmark = pytest.mark.integration
PREFIX = "it-follow-"
WATCH = """
[[watchlist]]
name = "Procedimiento administrativo"
law = "Ley 39/2015"
recipients = ["juridico@example.org"]

[[watchlist]]
name = "Contratos públicos"
law = "LCSP"
relations = ["modifica", "deroga"]
recipients = ["contratacion@example.org"]
"""


@pytest.fixture()
def settings(live_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    watch = tmp_path / "watch.toml"
    watch.write_text(WATCH, encoding="utf-8")
    with private_database(live_settings) as private:
        yield private.model_copy(update={
            "data_dir": tmp_path / "data", "es_index_prefix": PREFIX,
            "digest_recipients": [], "digest_watchlists_file": watch,
            "digest_mail_from": "boeflow@example.org"})


def test_watchlist_entries_name_laws(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WATCH, encoding="utf-8")
    lpac, lcsp = load_watchlists(path)
    assert (lpac.law_id, lpac.relations) == ("BOE-A-2015-10565",
                                             ["modifica", "deroga", "corrige", "cita"])
    assert (lcsp.law_id, lcsp.relations) == ("BOE-A-2017-12902", ["modifica", "deroga"])
    assert "norma: Ley 39/2015 (BOE-A-2015-10565)" in lpac.criteria()[0]
    for law in ("https://www.boe.es/eli/es/rd/2006/07/21/887", "Real Decreto 887/2006",
                "BOE-A-2006-13371", "RLGS"):
        path.write_text(f'[[watchlist]]\nname = "x"\nlaw = "{law}"\n', encoding="utf-8")
        assert load_watchlists(path)[0].law_id == "BOE-A-2006-13371", law
    path.write_text('[[watchlist]]\nname = "x"\nlaw = "Ley 99/2099"\n', encoding="utf-8")
    with pytest.raises(WatchlistError, match="law 'Ley 99/2099' is not a BOE id"):
        load_watchlists(path)
    path.write_text('[[watchlist]]\nname = "x"\nlaw = "LPAC"\nrelations = ["menciona"]\n',
                    encoding="utf-8")
    with pytest.raises(WatchlistError, match="relations"):
        load_watchlists(path)


def test_a_followed_law_reaches_only_its_recipient(
        settings: Settings, fetched: dict[str, DayManifest],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from boeflow.airflow.notify import smtp_sender

    drop_indices(get_client(settings), IndexNames(PREFIX))
    record = _record("BOE-A-2024-22928", summary=SUMMARY_22928)
    with BoeServer(SAMPLES) as server, BoeClient(ClientConfig(base_url=server.url,
                                                              rate_limit=0)) as client:
        record["legal_links"] = links_for(
            parse_xml_bytes((DOCUMENTS / "BOE-A-2024-22928.xml").read_bytes()),
            ConsolidadaClient(client))
    records = {"BOE-A-2024-22928": record}
    draft = _day(fetched, "2024-11-06", records)
    watchlists = load_watchlists(settings.digest_watchlists_file)
    draft.watchlists = run_watchlists(draft, watchlists, records, None)
    lpac, lcsp = draft.watchlists
    assert [(m.boe_id, m.why) for m in lpac.matches] == [
        ("BOE-A-2024-22928", ["modifica BOE-A-2015-10565"])]
    assert lcsp.matches == []
    assert "BOE-A-2024-22930" in render_html(draft)  # an item of the day that is not a hit
    write_digest(jobs.raw_store(settings), draft, draft=True)
    assert jobs.publish_day("2024-11-06", settings, {
        "decision": "approved", "reviewer": "r", "draft_hash": draft.draft_hash}).published
    with smtp_server() as (port, inbox):
        monkeypatch.setenv("AIRFLOW_CONN_BOEFLOW_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}))
        send = smtp_sender("boeflow_smtp", settings.digest_mail_from, {})
        sent = jobs.deliver_day("2024-11-06", settings, send)
        assert sent.sent == ["mail:follow:juridico@example.org"]
        again = jobs.deliver_day("2024-11-06", settings, send)
        assert again.sent == []
    assert [tuple(r) for r, _ in inbox.messages] == [("juridico@example.org",)]
    [(_, message)] = inbox.messages
    assert message["Subject"] == "BOE del 06/11/2024 · Seguimiento de normas: 1 disposición"
    html = body_text(message, "html")
    text = body_text(message, "plain")
    assert "BOE-A-2024-22928" in html and "Disposición adicional novena" in html
    assert "<ins" in html  # the card with the new provision
    assert "«Procedimiento administrativo» (Ley 39/2015 · BOE-A-2015-10565):" in text
    # Only this recipient's hits: none of the day's other 237 items.
    assert "BOE-A-2024-22930" not in html and "BOE-A-2024-22930" not in text
    assert "Contratos públicos" not in html
