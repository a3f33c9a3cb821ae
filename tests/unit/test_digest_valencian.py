"""Every item of a real day in Valencian: the 2024-11-06 sumario (238 items) fetched from the
replay server, its titles, department and section names translated by Apertium
(``boeflow.enrich.titles``, cached), and the digest's Valencian and bilingual views."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer
from boeflow.core.settings import Settings
from boeflow.digest.build import DayInputs, build_draft
from boeflow.digest.render import render_html, render_json, render_markdown
from boeflow.enrich.apertium import PACKAGES
from boeflow.enrich.titles import load_day_titles, translate_day_titles
from boeflow.review import check_language
from tests.conftest import SAMPLES

pytestmark = pytest.mark.skipif(shutil.which("apertium") is None,
                                reason=f"needs the Debian packages {PACKAGES}")
DAY = date(2024, 11, 6)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DayManifest]:
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import load_manifest
    from boeflow.jobs.common import raw_store

    settings = Settings(data_dir=tmp_path_factory.mktemp("valencian"), samples_dir=SAMPLES)
    with BoeServer(SAMPLES) as server:
        replay = settings.model_copy(update={"boe_base_url": server.url, "boe_rate_limit": 0.0,
                                             "boe_max_attempts": 1})
        with BoeClient(ClientConfig.from_settings(replay)) as client:
            Fetcher(client, raw_store(replay), FetchOptions.from_settings(replay)).fetch_day(DAY)
        manifest = load_manifest(raw_store(replay), DAY)
    assert manifest is not None and len(manifest.items) == 238
    return settings, manifest


def test_every_title_in_valencian_once(fetched: tuple[Settings, DayManifest]) -> None:
    settings, manifest = fetched
    first = translate_day_titles(settings, DAY, manifest)
    assert first["translated"] == first["titles"] > 238
    again = translate_day_titles(settings, DAY, manifest)
    assert again["translated"] == 0  # a rerun translates nothing
    titles = load_day_titles(settings, DAY)
    stored = json.loads((Path(settings.data_dir) / "enrich" / "titles" / "2024-11-06.json")
                        .read_text(encoding="utf-8"))
    assert stored["model"] == "apertium:spa-cat_valencia" and stored["revision"]
    for item in manifest.items:
        va = titles[item.title]
        assert va and va != item.title, item.title
    letters = " ".join(titles[i.title] for i in manifest.items[:40])
    assert not check_language(letters, "va").flagged
    assert titles["JEFATURA DEL ESTADO"] == "PREFECTURA DE L'ESTAT"
    assert titles["III. Otras disposiciones"] == "III. Altres disposicions"


def test_the_digest_shows_them_in_every_format(fetched: tuple[Settings, DayManifest]) -> None:
    settings, manifest = fetched
    translate_day_titles(settings, DAY, manifest)
    titles = load_day_titles(settings, DAY)
    digest = build_draft(DayInputs(day=DAY, manifest=manifest, records={}, titles_va=titles))
    items = digest.all_items()
    assert len(items) == 238 and all(i.title_va for i in items)
    assert all(s.name_va for s in digest.sections)
    assert all(d.name_va for s in digest.sections for d in s.departments)
    assert all(n.title_va for n in digest.incidencias if n.title)
    compact = next(i for i in items if i.compact)
    html = render_html(digest)
    markdown = render_markdown(digest)
    as_json = json.loads(render_json(digest))
    assert f'<span class="va" lang="ca-valencia">{compact.title_va}</span>' in \
        html.replace("&#39;", "'")
    assert "elements sense resum" in html and "PREFECTURA DE L&#39;ESTAT" in html
    assert f"*va:* {compact.title_va}"[:60] in markdown.replace("\\", "")
    assert "· PREFECTURA DE L'ESTAT" in markdown
    first = as_json["sections"][0]
    assert first["name_va"] and first["departments"][0]["name_va"] == "PREFECTURA DE L'ESTAT"


def test_the_valencian_view_shows_only_valencian_names(
        fetched: tuple[Settings, DayManifest], tmp_path: Path) -> None:
    """The page as a reader sees it (headless Chromium): after "Valencià" the section and
    department headings and the compact lists are in Valencian only; the bilingual view
    shows both. The screenshots are kept in the test's directory."""
    from tests.support.browser import headless_chromium

    settings, manifest = fetched
    translate_day_titles(settings, DAY, manifest)
    digest = build_draft(DayInputs(day=DAY, manifest=manifest, records={},
                                   titles_va=load_day_titles(settings, DAY)))
    page = tmp_path / "digest.html"
    page.write_text(render_html(digest), encoding="utf-8")
    with headless_chromium((1100, 1300), "es") as driver:
        driver.get(page.as_uri())
        heading = driver.find_element("css selector", "#sec-1 h3")
        spanish = heading.find_element("css selector", "span.es")
        valencian = heading.find_element("css selector", "span.va")
        assert (spanish.text, valencian.text) == ("JEFATURA DEL ESTADO", "PREFECTURA DE L'ESTAT")
        assert spanish.is_displayed() and valencian.is_displayed()  # bilingual view
        driver.save_screenshot(str(tmp_path / "both.png"))
        driver.find_element("css selector", "label[for=lang-va]").click()
        assert heading.text.startswith("PREFECTURA DE L'ESTAT (")
        assert not spanish.is_displayed()
        summary = driver.find_element("css selector", "#sec-1 details.compact summary")
        assert summary.text == "1 element sense resum"
        driver.save_screenshot(str(tmp_path / "va.png"))
        driver.find_element("css selector", "label[for=lang-es]").click()
        assert heading.text.startswith("JEFATURA DEL ESTADO (")
    assert (tmp_path / "va.png").stat().st_size > 10_000
