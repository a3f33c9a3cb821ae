"""The digest page in a real headless browser (Debian's chromium, driven by Selenium through
Debian's chromedriver; nothing downloaded): title, section headings, an item's link, the
BORRADOR watermark on the draft and not after publication, no horizontal overflow on a phone
or a desktop, the Valencian text not cut; a full-page screenshot and a print-to-PDF are saved
under the test's output directory (and were looked at while developing)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.print_page_options import PrintOptions

from boeflow.boe.manifest import DayManifest
from boeflow.digest.build import ReviewInput, apply_review
from boeflow.digest.render import render_html
from tests.support.browser import headless_chromium
from tests.unit.test_digest import _checker, _nov6, fetched  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium((1280, 900), "es") as driver:
        yield driver


def _full_page_png(driver: webdriver.Chrome, path: Path, width: int) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(int(height), 12000), "deviceScaleFactor": 1,
        "mobile": width < 600})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png",
                                                             "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _no_overflow(driver: webdriver.Chrome) -> None:
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the window"
    cut = driver.execute_script(
        "return [...document.querySelectorAll('.va .title, .va p')]"
        ".filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1).length")
    assert cut == 0, "Valencian text overflows its box"


def test_digest_page_in_chromium(browser: webdriver.Chrome,
                                 fetched: dict[str, DayManifest],  # noqa: F811
                                 tmp_path: Path) -> None:
    draft = _nov6(fetched)
    final = apply_review(draft, ReviewInput(decision="approved", reviewer="revisora",
                                            excluded=["BOE-A-2024-22930"],
                                            note="Revisado"), _checker)
    final.version = 1
    pages = {"draft": draft, "published": final}
    for name, digest in pages.items():
        page = tmp_path / f"{name}.html"
        page.write_text(render_html(digest), encoding="utf-8")
        browser.set_window_size(1280, 900)
        browser.get(page.as_uri())
        assert browser.title.endswith("BOE del miércoles 6 de noviembre de 2024 — resumen "
                                      "diario")
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert headings[0].startswith("I. Disposiciones generales")
        assert any(h.startswith("V. Anuncios. - A. Contratación del Sector Público")
                   for h in headings)
        assert headings[-1].startswith("Incidencias")
        item = browser.find_element(By.ID, "boe-a-2024-22928")
        link = item.find_element(By.LINK_TEXT, "PDF")
        assert link.get_attribute("href") == "https://www.boe.es/boe/dias/2024/11/06/pdfs/" \
                                             "BOE-A-2024-22928.pdf"
        assert item.find_element(By.CSS_SELECTOR, ".va .title").is_displayed()
        watermarks = browser.find_elements(By.CLASS_NAME, "watermark")
        if name == "draft":
            assert browser.title.startswith("[BORRADOR]")
            assert watermarks and watermarks[0].is_displayed()
            assert watermarks[0].text == "BORRADOR — pendiente de revisión"
            assert browser.find_element(By.ID, "watermark").is_displayed()
        else:
            assert watermarks == [] and "BORRADOR" not in browser.page_source
            assert "revisora" in browser.find_element(By.ID, "decision").text
        _no_overflow(browser)
        # The language toggle hides the other language (CSS only, works offline).
        browser.find_element(By.CSS_SELECTOR, "label[for=lang-va]").click()
        assert not item.find_element(By.CSS_SELECTOR, ".es .title").is_displayed()
        assert item.find_element(By.CSS_SELECTOR, ".va .title").is_displayed()
        browser.find_element(By.CSS_SELECTOR, "label[for=lang-both]").click()
        _full_page_png(browser, tmp_path / f"{name}-desktop.png", 1280)
        browser.set_window_size(390, 844)
        browser.get(page.as_uri())
        _no_overflow(browser)
        _full_page_png(browser, tmp_path / f"{name}-phone.png", 390)
        pdf = base64.b64decode(browser.print_page(PrintOptions()))
        assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
        (tmp_path / f"{name}.pdf").write_bytes(pdf)
        for suffix in ("-desktop.png", "-phone.png"):
            assert (tmp_path / f"{name}{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
