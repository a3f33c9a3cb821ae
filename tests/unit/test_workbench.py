"""The workbench's logic and pages without Airflow: the draft of 2024-11-06 (fetched from the
replay server, BOE-A-2024-22928 with a hand-written summary) in a raw store; the answer built
from the page and checked (unknown ids, empty corrections, corrections that fail the automatic
review again); ids with path characters refused; the page rendered with ``<script>`` in a
title, an item note, a correction and the general note, opened in headless Chromium: nothing
runs and the text is shown as typed."""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from boeflow.boe.manifest import DayManifest
from boeflow.boe.store import RawStore
from boeflow.core.settings import Settings
from boeflow.digest.model import Digest
from boeflow.digest.publish import write_digest
from boeflow.workbench import app as wb
from boeflow.workbench import review
from boeflow.workbench.notice import borrador_url, deadline_interval, review_request
from tests.conftest import DOCUMENTS
from tests.support.browser import headless_chromium
from tests.unit.test_digest import _nov6, fetched

__all__ = ["fetched"]  # the module fixture of test_digest (the two fetched days)
DAY = date(2024, 11, 6)
ITEM = "BOE-A-2024-22928"
OTHER = "BOE-A-2024-22930"
SCRIPT = "<script>window.__pwned = 1; document.title = 'pwned'</script>"


@pytest.fixture
def store(tmp_path: Path, fetched: dict[str, DayManifest]) -> tuple[RawStore, Digest]:
    raw = RawStore(tmp_path / "raw")
    draft = _nov6(fetched)
    write_digest(raw, draft, draft=True)
    # The item as fetched into the raw store (what the automatic review read).
    raw.write_atomic(f"boe/2024/11/06/items/{ITEM}.xml",
                     (DOCUMENTS / f"{ITEM}.xml").read_bytes())
    return raw, draft


def _title(boe_id: str) -> str:
    from boeflow.parse import parse_file

    return parse_file(DOCUMENTS / f"{boe_id}.xml").title


def _valencian(text: str) -> str:
    return subprocess.run(["apertium", "spa-cat_valencia"], input=text, capture_output=True,
                          text=True, check=True).stdout.strip().replace("*", "")


def test_days_and_ids_with_path_characters_are_refused() -> None:
    assert review.parse_day("2024-11-06") == DAY
    for bad in ("../2024-11-06", "2024-11-06/..", "2024/11/06", "2024-02-30", "", None,
                "2024-11-06\x00", "%2e%2e"):
        with pytest.raises(review.BadId):
            review.parse_day(bad)
    assert review.check_boe_id(ITEM) == ITEM
    for bad in ("../BOE-A-2024-22928", "BOE-A-2024-22928/x", "BOE-A-2024-22928.xml", "a"):
        with pytest.raises(review.BadId):
            review.check_boe_id(bad)
    with pytest.raises(review.BadId):
        review.source_text(RawStore(Path("/nonexistent")), DAY, "../../etc/passwd")


def test_flags_quote_the_source_passage(store: tuple[RawStore, Digest]) -> None:
    raw, _ = store
    text = review.source_text(raw, DAY, ITEM)
    assert text.startswith("I\n\nEl domingo 27 de octubre de 2024")
    found = review.flags(['fidelidad: fecha "27 de octubre de 2024" no está en el resumen',
                          'fidelidad: número "31415" no está en la fuente', "idioma: es"], text)
    assert found[0].span == "27 de octubre de 2024" and "domingo" in found[0].before
    assert found[0].after.startswith(" la Agencia Estatal de Meteorología")
    assert found[1].quoted == "31415" and not found[1].span
    assert found[2].quoted is None
    assert review.source_text(raw, DAY, OTHER) == ""  # not in this store


def test_answer_is_checked_before_it_is_sent(store: tuple[RawStore, Digest]) -> None:
    raw, draft = store
    settings = Settings()
    options = ["Publicar", "Rechazar"]
    with pytest.raises(ValueError, match="option"):
        review.submission({"option": "Aprobar"}, options)
    title = _title(ITEM)
    good = review.submission({
        "option": "Publicar", "excluir": [OTHER], "draft_hash": draft.draft_hash,
        "correcciones": {ITEM: title, f"{ITEM}:va": _valencian(title)},
        "notas": {ITEM: "revisado", OTHER: "  "}, "nota": " Nota general "}, options)
    assert good.params == {"excluir": [OTHER], "draft_hash": draft.draft_hash,
                           "correcciones": {ITEM: title, f"{ITEM}:va": _valencian(title)},
                           "notas": {ITEM: "revisado"}, "nota": "Nota general"}
    assert set(good.params) == set(review.ANSWER_KEYS)
    assert wb.problems_of(settings, raw, DAY, draft, good) == []

    def refused(**changes: object) -> list[tuple[str | None, str | None, str]]:
        body = {"option": "Publicar", "draft_hash": draft.draft_hash, **changes}
        sent = review.submission(body, options)
        return [(p.boe_id, p.field, p.message)
                for p in wb.problems_of(settings, raw, DAY, draft, sent)]

    # What boeflow.digest.decision refuses, one at a time, placed by its item and control.
    [(where, field, message)] = refused(draft_hash="otro")
    assert (where, field) == (None, "draft") and "draft_hash" in message
    [(where, field, _)] = refused(excluir=["BOE-A-2024-99999"])
    assert (where, field) == ("BOE-A-2024-99999", "excluir")
    [(where, field, message)] = refused(correcciones={ITEM: "   "})
    assert (where, field) == (ITEM, "es") and "empty correction" in message
    [(where, field, _)] = refused(correcciones={"BOE-A-2024-1:va": "x"})
    assert (where, field) == ("BOE-A-2024-1", "va")
    [(where, field, _)] = refused(notas={"BOE-A-2024-2": "nota"})
    assert (where, field) == ("BOE-A-2024-2", "nota_item")
    [(where, field, _)] = refused(excluir=[ITEM], notas={ITEM: "nota"})
    assert (where, field) == (ITEM, "nota_item")
    # Then every correction the automatic review refuses again, each by its item.
    invented = "El Real Decreto-ley 7/2023 del 3 de marzo de 1999 prohíbe las vacaciones."
    found = refused(correcciones={ITEM: invented, OTHER: invented})
    assert [(w, f) for w, f, _ in found] == [(ITEM, "es"), (OTHER, "es")]
    assert all("no pasa la revisión automática" in m and "3 de marzo de 1999" in m
               for _, _, m in found)
    # A Valencian correction is checked as the translation of the Spanish resumen.
    [(where, field, message)] = refused(correcciones={f"{ITEM}:va": "Text inventat de 1999."})
    assert (where, field) == (ITEM, "va") and '"1999" no está en la fuente' in message
    # A rejection is not re-reviewed: it publishes nothing.
    assert refused(option="Rechazar", correcciones={ITEM: "x 1999"}) == []


def _page(raw: RawStore, draft: Digest, **extra: object) -> str:
    values: dict[str, object] = {
        "base": "/boeflow", "dag_id": "boe_daily", "run_id": "manual__x<y>", "lang": "bi",
        "languages": wb.LANGUAGES, "states": wb.STATES, "csrf": "t", "digest": draft,
        "views": wb.item_views(raw, DAY, draft), "answer": None, "editable": True,
        "options": ["Publicar", "Rechazar"], "message": None, "day": "2024-11-06"}
    values.update(extra)
    return wb.render("borrador.html.jinja", **values)


def test_script_in_title_note_and_correction_is_shown_as_text(
        store: tuple[RawStore, Digest], tmp_path: Path) -> None:
    raw, draft = store
    hostile = draft.model_copy(deep=True)
    item = next(i for i in hostile.all_items() if i.boe_id == ITEM)
    item.title_es = f"Título {SCRIPT}"
    item.review.reasons = [f'fidelidad: "{SCRIPT}" no está en la fuente']
    answered = {"option": "Publicar", "user": f"revisora{SCRIPT}", "at": "2024-11-06 10:00",
                "params": {"excluir": [OTHER], "correcciones": {ITEM: f"Resumen {SCRIPT}"},
                           "notas": {ITEM: f"Nota {SCRIPT}"}, "nota": f"General {SCRIPT}"}}
    html = _page(raw, hostile, answer=answered, editable=False)
    assert "<script>window" not in html and "&lt;script&gt;window" in html
    assert html.count("<script") == 1  # only the page's own script file
    assert 'src="/boeflow/static/workbench.js"' in html
    editable = _page(raw, hostile)
    assert "<script>window" not in editable
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    with headless_chromium((1300, 900), "es-ES") as driver:
        driver.get(page.as_uri())
        time.sleep(0.5)
        assert driver.execute_script("return window.__pwned") is None
        assert driver.title == "Borrador del BOE del 2024-11-06"
        text = driver.find_element("tag name", "body").text
        for shown in (f"Título {SCRIPT}", f"Resumen {SCRIPT}", f"Nota {SCRIPT}",
                      f"General {SCRIPT}", f"revisora{SCRIPT}"):
            assert shown in text, shown


def test_csrf_token_is_bound_to_the_session() -> None:
    a = wb.csrf_token("token-a", b"secret")
    assert a == wb.csrf_token("token-a", b"secret")
    assert a != wb.csrf_token("token-b", b"secret") != wb.csrf_token("token-a", b"other")


def test_reviewer_notice_and_deadline() -> None:
    assert deadline_interval("14:00") == timedelta(hours=5)
    assert deadline_interval("+20") == timedelta(seconds=20)
    with pytest.raises(ValueError):
        deadline_interval("08:30")
    url = borrador_url("http://af:8080/", "boe_daily", "manual__2024-11-06T10:00:00+00:00")
    assert url == ("http://af:8080/dags/boe_daily/runs/manual__2024-11-06T10%3A00%3A00%2B00"
                   "%3A00/plugin/borrador")
    mail = review_request("2024-11-06", url, ["r@example.org"], 2, 1)
    assert url in mail.text and "2 elementos, 1 necesitan atención." in mail.text
    assert f'href="{url}"' in mail.html
    with pytest.raises(ValueError):
        Settings(digest_review_deadline="14h")
