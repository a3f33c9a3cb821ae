"""Amendment cards in the digest of 2024-11-12 (issue 22): the recorded sumario fetched from
the replay server, RDL 7/2024's links read from the recorded consolidated Ley 7/1985, the
card of its art. 57 in Markdown, HTML (looked at in headless Chromium), JSON and e-mail."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from boeflow.boe.consolidada import ConsolidadaClient
from boeflow.boe.fetch import Fetcher, FetchOptions
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.replay import BoeServer, Fault
from boeflow.boe.store import RawStore, load_manifest
from boeflow.core.settings import Settings
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.digest.amendments import word_diff
from boeflow.digest.build import DayInputs, build_draft
from boeflow.digest.collect import fetch_records
from boeflow.digest.render import render_email_html, render_html, render_json, render_markdown
from boeflow.enrich.links import links_for, refresh_links
from boeflow.index.client import drop_indices, get_client, names_for, setup_indices
from boeflow.parse import parse_file
from tests.conftest import DOCUMENTS, SAMPLES
from tests.support.browser import headless_chromium

pytestmark = pytest.mark.integration
DAY = date(2024, 11, 12)
RDL = "BOE-A-2024-23422"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("cards-data")
    with BoeServer(SAMPLES) as server:
        settings = Settings(data_dir=data, samples_dir=SAMPLES, boe_base_url=server.url,
                            boe_rate_limit=0.0, boe_max_attempts=1)
        store = RawStore(data / "raw")
        with BoeClient(ClientConfig.from_settings(settings)) as client:
            Fetcher(client, store, FetchOptions.from_settings(settings, sections=["1"])
                    ).fetch_day(DAY)
        yield {"settings": settings, "store": store, "server": server}


def _record(boe_id: str) -> dict[str, Any]:
    doc = parse_file(DOCUMENTS / f"{boe_id}.xml")
    return {"doc_id": doc.id, "title": doc.title, "rango": doc.rango, "eli": doc.eli,
            "url_pdf": doc.url_pdf, "references": [r.model_dump() for r in doc.references]}


def _digest(day: dict[str, Any]) -> Any:
    manifest = load_manifest(day["store"], DAY)
    assert manifest is not None and RDL in {i.id for i in manifest.items}
    record = _record(RDL)
    with BoeClient(ClientConfig.from_settings(day["settings"])) as client:
        record["legal_links"] = links_for(
            parse_xml_bytes(day["store"].read(f"boe/2024/11/12/items/{RDL}.xml")),
            ConsolidadaClient(client, day["store"]))
    return build_draft(DayInputs(day=DAY, manifest=manifest, records={RDL: record}))


def test_the_art_57_card_in_every_format(day: dict[str, Any]) -> None:
    digest = _digest(day)
    [item] = [i for i in digest.all_items() if i.boe_id == RDL]
    assert not item.compact  # a card makes the item shown in full, summary or not
    card = next(a for a in item.amendments if a.target == "BOE-A-1985-5392")
    assert card.url == "https://www.boe.es/eli/es/l/1985/04/02/7"
    [block] = card.blocks
    assert (block.title, block.status, block.before_version, block.after_version) == (
        "Artículo 57", "consolidated", "BOE-A-2013-13756", RDL)
    inserted = " ".join(p.text for p in block.diff if p.op == "insert")
    assert inserted.strip().startswith("4. Asimismo") and "emergencia civil" in inserted
    assert not [p for p in block.diff if p.op == "delete"]

    markdown = render_markdown(digest)
    assert "**Modifica / Modifica** [Ley 7/1985" in markdown
    assert "*Artículo 57* — texto consolidado / text consolidat" in markdown
    assert "**4. Asimismo" in markdown
    data = json.loads(render_json(digest))
    items = [i for s in data["sections"] for d in s["departments"] for i in d["items"]]
    assert any(a["target"] == "BOE-A-1985-5392" for i in items for a in i["amendments"])
    mail = render_email_html(digest)
    assert "<ins" in mail and "Canvis" in mail and "texto añadido" in mail


def test_the_art_57_card_in_chromium(day: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "digest-2024-11-12.html"
    page.write_text(render_html(_digest(day)), encoding="utf-8")
    # Screenshots under the test's directory, or BOEFLOW_TEST_SHOTS to keep them for a look.
    shots = Path(os.environ.get("BOEFLOW_TEST_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with headless_chromium((1280, 900), "es") as browser:
        browser.get(page.as_uri())
        item = browser.find_element(By.ID, RDL.lower())
        block = item.find_element(By.ID, f"{RDL.lower()}-boe-a-1985-5392-a57")
        assert "Artículo 57" in block.text and "texto consolidado" in block.text
        ins = block.find_elements(By.CSS_SELECTOR, ".diff ins")
        assert ins and any("4. Asimismo" in e.text for e in ins)
        # Not colour alone: the inserted words are underlined, and named for screen readers.
        decoration = browser.execute_script(
            "return getComputedStyle(arguments[0]).textDecorationLine", ins[0])
        assert "underline" in decoration
        assert "[añadido:" in ins[0].get_attribute("textContent")
        browser.execute_script("arguments[0].scrollIntoView()", block)
        (shots / "card-art57.png").write_bytes(block.screenshot_as_png)
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        (shots / "digest-2024-11-12-viewport.png").write_bytes(base64.b64decode(shot["data"]))
        # The Valencian view translates the card's headings; the law stays in Spanish.
        browser.find_element(By.CSS_SELECTOR, "label[for=lang-va]").click()
        assert "text consolidat" in block.text and "texto consolidado" not in block.text
        assert "4. Asimismo" in block.text
        (shots / "card-art57-va.png").write_bytes(block.screenshot_as_png)
    if shots != tmp_path:
        shutil.copy(page, shots / page.name)


def test_refresh_links_stores_them_on_the_record(day: dict[str, Any],
                                                 live_settings: Settings) -> None:
    settings = day["settings"].model_copy(update={"es_url": live_settings.es_url,
                                                  "es_index_prefix": "it-links-"})
    es = get_client(settings)
    names = names_for(settings)
    drop_indices(es, names)
    setup_indices(es, settings, 8)
    record = _record(RDL)
    es.index(index=names.documents, id=RDL, document=record, refresh=True)
    records = fetch_records(es, names, [RDL])
    # The API failing (HTTP 500 on the LBRL): nothing stored, the item recorded as failed.
    metadatos = "/datosabiertos/api/legislacion-consolidada/id/BOE-A-1985-5392/metadatos"
    day["server"].persistent[metadatos] = Fault("status", status=500)
    try:
        down = refresh_links(DAY, settings, day["store"], es, names, records)
    finally:
        del day["server"].persistent[metadatos]
    assert down["linked"] == [] and "API unreachable: HTTP 500" in down["failed"][RDL]
    assert "legal_links" not in fetch_records(es, names, [RDL])[RDL]
    first = refresh_links(DAY, settings, day["store"], es, names, records)
    assert first == {"linked": [RDL], "failed": {}}
    es.indices.refresh(index=names.documents)
    stored = fetch_records(es, names, [RDL])[RDL]["legal_links"]
    assert stored["boe_id"] == RDL
    assert any(r["target"] == "BOE-A-1985-5392" for r in stored["references"])
    # A rerun of a finished day does nothing (everything consolidated or not in the API).
    again = refresh_links(DAY, settings, day["store"], es, names, fetch_records(es, names, [RDL]))
    assert again == {"linked": [], "failed": {}}
    drop_indices(es, names)


def test_word_diff_marks_only_the_change() -> None:
    parts = word_diff("uno dos tres cuatro", "uno dos TRES cuatro cinco")
    assert [(p.op, p.text.strip()) for p in parts] == [
        ("equal", "uno dos"), ("delete", "tres"), ("insert", "TRES"), ("equal", "cuatro"),
        ("insert", "cinco")]
    long = " ".join(f"w{n}" for n in range(100))
    skipped = word_diff(long, long + " fin")
    assert [p.op for p in skipped] == ["skip", "equal", "insert"]


def test_a_de_conformidad_card_is_collapsed_with_the_text_in_force(
        day: dict[str, Any]) -> None:
    """RDL 6/2024 acts "de conformidad con el art. 23 de la Ley 17/2015", a law the recorded
    API lacks; pointed at art. 21 of the recorded Ley 39/2015 instead, the card is folded and
    holds the article as in force on 2024-11-06."""
    from boeflow.digest.amendments import cards

    source = (DOCUMENTS / "BOE-A-2024-22928.xml").read_bytes()
    changed = source.replace(
        b'referencia="BOE-A-2015-7730" orden="3060">\n          <palabra codigo="440">DE '
        b'CONFORMIDAD con</palabra>\n          <texto>el art. 23 de la Ley 17/2015',
        b'referencia="BOE-A-2015-10565" orden="3060">\n          <palabra codigo="440">DE '
        b'CONFORMIDAD con</palabra>\n          <texto>el art. 21 de la Ley 39/2015', 1)
    assert changed != source
    with BoeClient(ClientConfig.from_settings(day["settings"])) as client:
        links = links_for(parse_xml_bytes(changed), ConsolidadaClient(client))
    card = next(c for c in cards(links) if c.relation == "de_conformidad")
    assert card.collapsed and card.target == "BOE-A-2015-10565"
    [block] = card.blocks
    assert block.title == "Artículo 21" and block.status == "consolidated"
    assert block.before and block.before.startswith("Artículo 21. Obligación de resolver")
    assert block.after is None and block.diff == []
    assert [c.collapsed for c in cards(links)][-1]  # folded cards come last
