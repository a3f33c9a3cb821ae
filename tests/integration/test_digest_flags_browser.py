"""Issue 20 in a real headless Chromium: a draft digest item whose summary has a wrong
deadline shows the flag with the quoted source span the review found (path, offsets, quote),
and the item's entry-into-force and deadline card. The screenshot of the item is saved under
the test's output directory (and was looked at while developing)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from boeflow.boe.manifest import DayManifest
from boeflow.digest.build import card_from
from boeflow.digest.model import FlaggedFact
from boeflow.digest.model import Summary as DigestSummary
from boeflow.digest.render import render_html
from boeflow.review import review_summary
from boeflow.review.card import facts_card
from boeflow.review.source import read_document
from tests.conftest import SAMPLES
from tests.support.browser import headless_chromium
from tests.unit.test_digest import _nov6, fetched  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium((1280, 900), "es") as driver:
        yield driver


def test_flags_show_their_source_spans(browser: webdriver.Chrome,
                                       fetched: dict[str, DayManifest],  # noqa: F811
                                       tmp_path: Path) -> None:
    doc = read_document(SAMPLES / "documents" / "BOE-A-2024-22928.xml")
    fields = {"resumen": doc.title, "puntos_clave": [
        "Las solicitudes de las ayudas se presentarán en el plazo de quince meses desde la "
        "publicación del real decreto-ley."], "a_quien_afecta": "Afectados por la DANA.",
        "plazos_y_fechas": [], "entrada_en_vigor": "Entra en vigor el 9 de noviembre de 2024.",
        "normas_afectadas": []}
    review = review_summary(fields=fields, raw_text="", status="ok", errors=[],
                            source_text=doc.review_text(), resumen_max_chars=2000,
                            source=doc.anchor_source())
    assert review.needs_attention
    draft = _nov6(fetched)
    item = next(i for i in draft.all_items() if i.boe_id == doc.id)
    item.summary_es = DigestSummary.model_validate(fields)  # the summary the flags are about
    item.review.status = "needs_attention"
    item.review.reasons = review.reasons
    item.review.facts = [FlaggedFact.model_validate(f.model_dump(exclude={"field"}))
                         for f in review.flagged_facts()]
    item.card = card_from(facts_card(doc))
    page = tmp_path / "draft.html"
    page.write_text(render_html(draft), encoding="utf-8")
    browser.set_window_size(1280, 2000)  # the whole item in the viewport for its screenshot
    browser.get(page.as_uri())
    article = browser.find_element(By.ID, "boe-a-2024-22928")
    flags = article.find_element(By.CSS_SELECTOR, ".flags")
    assert flags.is_displayed()
    values = [q.text for q in flags.find_elements(By.CSS_SELECTOR, "q.flag-value")]
    quotes = [q.text for q in flags.find_elements(By.CSS_SELECTOR, "q.anchor-quote")]
    assert "quince meses" in values and "9 de noviembre de 2024" in values
    assert any(q.lower() == "dos meses" for q in quotes)  # the closest candidate span
    text = doc.anchor_source().text
    for fact in item.review.facts:
        assert fact.source is not None and fact.source.start is not None
        assert text[fact.source.start:fact.source.end] == fact.source.quote
    card = article.find_element(By.CSS_SELECTOR, ".card")
    assert "Entrada en vigor: jueves 7 de noviembre de 2024" in card.text
    assert "martes 7 de enero de 2025" in card.text  # two months, 6 January moved
    browser.execute_script("arguments[0].scrollIntoView()", article)
    shot = tmp_path / "draft-flags.png"
    article.screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("BOEFLOW_KEEP_SCREENSHOTS"):
        Path(os.environ["BOEFLOW_KEEP_SCREENSHOTS"]).write_bytes(shot.read_bytes())


def test_hitl_body_quotes_the_source_span_of_each_flag(
        fetched: dict[str, DayManifest]) -> None:  # noqa: F811
    from boeflow.digest.render import review_body

    doc = read_document(SAMPLES / "documents" / "BOE-A-2024-22928.xml")
    fields = {"resumen": doc.title, "puntos_clave": [
        "Las solicitudes se presentarán en el plazo de quince meses."],
        "a_quien_afecta": "Afectados.", "plazos_y_fechas": [], "entrada_en_vigor": "No consta.",
        "normas_afectadas": []}
    review = review_summary(fields=fields, raw_text="", status="ok", errors=[],
                            source_text=doc.review_text(), resumen_max_chars=2000,
                            source=doc.anchor_source())
    draft = _nov6(fetched)
    item = next(i for i in draft.all_items() if i.boe_id == doc.id)
    item.review.status = "needs_attention"
    item.review.reasons = review.reasons
    item.review.facts = [FlaggedFact.model_validate(f.model_dump(exclude={"field"}))
                         for f in review.flagged_facts()]
    body = review_body(draft, "digests/2024/11/06/draft/digest.html")
    [flag] = [f for f in item.review.facts if f.kind == "deadline"]
    assert flag.source is not None
    line = next(x for x in body.splitlines() if x.strip().startswith(
        f"- fuente, {flag.source.path}:"))
    assert f"«{flag.source.quote}»" in line and "quince meses" in line
    # The Markdown digest carries the same span and the item's card.
    from boeflow.digest.render import render_markdown

    item.card = card_from(facts_card(doc))
    markdown = render_markdown(draft)
    assert f"{flag.source.path}: «{flag.source.quote}»" in markdown
    assert "Entrada en vigor: jueves 7 de noviembre de 2024" in markdown
    assert "plazo de dos meses → martes 7 de enero de 2025" in markdown
