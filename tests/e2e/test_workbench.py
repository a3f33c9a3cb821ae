"""The reviewer's workbench (plugins/boeflow_workbench.py) on the local Celery deployment
(`boeflow airflow up`, the real Elasticsearch, the recorded BOE, the smoke models), in
headless Chromium, as a reviewer uses it:

* when the approval of 2024-11-06 (section I: BOE-A-2024-22928 and BOE-A-2024-22930) starts,
  the reviewers get an e-mail (a local SMTP server, aiosmtpd) with the link to the run's
  "Borrador" tab; with a short review deadline, the reminder arrives too;
* the Borrador tab of the run in the Airflow UI shows the draft from the raw store (Castellano,
  Valencià, bilingual); a correction that fails the automatic review is shown next to its item
  and nothing is sent; then one item is excluded, the other's summary corrected in Spanish and
  in Valencian (the Spanish one with a ``<script>`` in it), an item note and a general note
  (with ``<script>``) are added, and "Publicar" is clicked;
* the published digest holds exactly that; Required Actions shows the answer; the audit log
  records the user; a second reviewer sees the answer and cannot answer again;
* no session → 401; a viewer (no permission to answer) → 403; a cross-site POST, a POST
  without the CSRF token and a form POST are refused; ids with path characters → 400;
  no ``<script>`` ran anywhere and the text is shown as typed.

Screenshots are saved in the artifacts directory (and were looked at)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from boeflow.boe.store import RawStore
from boeflow.core.settings import Settings
from boeflow.digest.publish import read_digest
from boeflow.workbench.notice import borrador_url
from boeflow_ops.services import airflow as af
from tests.conftest import DOCUMENTS
from tests.support.browser import headless_chromium, login, shot, wait_for
from tests.support.digest_fixtures import Inbox, body_text, smtp_server
from tests.support.local_airflow import DAG, LocalAirflow, dump, running_deployment

pytestmark = pytest.mark.e2e
PREFIX = "e2e-wb-"
DAY = "2024-11-06"
EXCLUDED = "BOE-A-2024-22930"
CORRECTED = "BOE-A-2024-22928"
REVIEWER = "revisora@example.org"
SCRIPT = "<script>window.__pwned = true; document.title = 'pwned'</script>"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(live_settings: Settings, smoke_models_dir: Path, smtp: tuple[int, Inbox],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    port, _ = smtp

    def before_stop(deployment: LocalAirflow) -> None:
        keep = os.environ.get("BOEFLOW_WORKBENCH_SHOTS")  # e.g. docs/img, to update them
        if keep:
            for shot in deployment.artifacts.glob("borrador-*.png"):
                shutil.copy2(shot, Path(keep) / shot.name)
        deployment.fail_unfinished()

    with running_deployment(
            live_settings, smoke_models_dir, tmp_path_factory.mktemp("workbench-e2e"), PREFIX,
            name="workbench-e2e", label="workbench e2e (screenshots, answers)",
            before_stop=before_stop,
            AIRFLOW_CONN_BOEFLOW_SMTP=json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}),
            BOEFLOW_DIGEST_REVIEWERS=json.dumps([REVIEWER]),
            # Reminded 40 s after the run is queued: the day is not approved by then.
            BOEFLOW_DIGEST_REVIEW_DEADLINE="+40") as deployment:
        yield deployment


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium((1400, 1000), "es-ES") as driver:
        yield driver


def _token(deployment: LocalAirflow, username: str, role: str) -> str:
    """A session token of ``username`` with ``role``, signed by the deployment's auth manager
    (the simple auth manager keeps users in a config option the deployment owns; a viewer is
    who Airflow would log in with that role)."""
    code = ("from airflow.api_fastapi.app import create_auth_manager\n"
            "from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser\n"
            f"print(create_auth_manager().generate_jwt(SimpleAuthManagerUser("
            f"username={username!r}, role={role!r})))")
    env = {**deployment.env, "AIRFLOW_HOME": str(deployment.layout.home),
           "AIRFLOW_CONFIG": str(deployment.layout.config)}
    out = subprocess.run([str(Path(af.airflow_executable()).with_name("python")), "-c", code],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


def _valencian(text: str) -> str:
    return subprocess.run(["apertium", "spa-cat_valencia"], input=text, capture_output=True,
                          text=True, check=True).stdout.strip().replace("*", "")


def _title(boe_id: str) -> str:
    from boeflow.parse import parse_file

    return parse_file(DOCUMENTS / f"{boe_id}.xml").title


def _wait_mail(inbox: Inbox, subject_part: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rcpts, message in inbox.messages:
            if subject_part in str(message["Subject"]):
                return rcpts, message
        time.sleep(1)
    raise AssertionError(f"no mail {subject_part!r}: "
                         f"{[str(m['Subject']) for _, m in inbox.messages]}")


def _in_frame(browser: webdriver.Chrome) -> None:
    browser.switch_to.default_content()
    frame = wait_for(browser, "iframe[title=Borrador]")
    browser.switch_to.frame(frame)


def _frame_wait(browser: webdriver.Chrome, css: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in browser.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"{css} not shown in the Borrador frame")


def _frame_shot(browser: webdriver.Chrome, path: Path, height: int = 1400) -> None:
    browser.switch_to.default_content()
    shot(browser, path, height=height)
    _in_frame(browser)


def test_review_in_the_borrador_tab(deployment: LocalAirflow, browser: webdriver.Chrome,
                                    smtp: tuple[int, Inbox]) -> None:
    out = deployment.artifacts
    settings = deployment.settings
    base = settings.airflow_url
    _, inbox = smtp
    run_id = deployment.trigger({"date": DAY, "sections": ["1"]})
    pending = deployment.wait_hitl(run_id)
    assert pending["params"]["draft_hash"]["value"], pending["params"]
    draft_hash = pending["params"]["draft_hash"]["value"]
    page = f"{base}/boeflow/borrador"
    query = {"dag_id": DAG, "run_id": run_id}
    tab = f"{base}/dags/{DAG}/runs/{run_id}/plugin/borrador"

    # The reviewers were told when the approval started, with the link to the tab.
    rcpts, request = _wait_mail(inbox, f"Resumen del BOE del {DAY}: pendiente de revisión")
    assert rcpts == [REVIEWER]
    assert borrador_url(base, DAG, run_id) in body_text(request, "plain")

    # --- security, before anyone answers -------------------------------------------------------
    admin = deployment.reviewer().token
    viewer = _token(deployment, "lector", "viewer")
    with httpx.Client(timeout=60) as http:
        assert http.get(page, params=query).status_code == 401
        assert http.post(f"{base}/boeflow/respuesta", params=query, json={}).status_code == 401
        assert http.get(f"{base}/boeflow/publicados").status_code == 401
        as_viewer = {"Cookie": f"_token={viewer}"}
        assert http.get(page, params=query, headers=as_viewer).status_code == 403
        assert http.post(f"{base}/boeflow/respuesta", params=query, headers=as_viewer,
                         json={"option": "Publicar"}).status_code == 403
        cookie = {"Cookie": f"_token={admin}"}
        shown = http.get(page, params=query, headers=cookie)
        assert shown.status_code == 200, shown.text[:500]
        csp = shown.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp
        assert "unsafe-inline" not in csp.split("style-src")[0]
        assert CORRECTED in shown.text and EXCLUDED in shown.text
        csrf = shown.text.split('name="boeflow-csrf" content="')[1].split('"')[0]
        body = {"option": "Publicar", "excluir": [], "correcciones": {}, "notas": {},
                "nota": "cross-site", "draft_hash": draft_hash}
        refused = [
            # another site's page posting with the reviewer's cookie
            http.post(f"{base}/boeflow/respuesta", params=query, json=body,
                      headers={**cookie, "X-BoeFlow-CSRF": csrf,
                               "Origin": "http://evil.example"}),
            http.post(f"{base}/boeflow/respuesta", params=query, json=body,
                      headers={**cookie, "X-BoeFlow-CSRF": csrf, "Sec-Fetch-Site": "cross-site"}),
            # the reviewer's cookie without the page's token
            http.post(f"{base}/boeflow/respuesta", params=query, json=body, headers=cookie),
            # a plain HTML form (what a cross-site form can send)
            http.post(f"{base}/boeflow/respuesta", params=query,
                      data={"option": "Publicar"}, headers={**cookie, "X-BoeFlow-CSRF": csrf}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 415], \
            [r.text for r in refused]
        # Ids with path characters are refused; only the raw store's digests are served.
        for day in ("..%2F..%2F..%2Fetc%2Fpasswd", "2024-11-06%2F..%2Fdraft", "2024-13-01"):
            response = http.get(f"{base}/boeflow/publicados/{day}", headers=cookie)
            assert response.status_code in (400, 404), (day, response.status_code)
            assert "root:" not in response.text
        # Answers that cannot be sent: the problem by its item, nothing sent.
        for changes, where in (({"excluir": ["BOE-A-2024-99999"]}, ("BOE-A-2024-99999",
                                                                      "excluir")),
                               ({"correcciones": {CORRECTED: "  "}}, (CORRECTED, "es")),
                               ({"draft_hash": "0" * 64}, (None, "draft"))):
            bad = http.post(f"{base}/boeflow/respuesta", params=query,
                            headers={"Authorization": f"Bearer {admin}"},
                            json={**body, **changes})
            assert bad.status_code == 422, bad.text
            assert [(p["boe_id"], p["field"]) for p in bad.json()["problems"]] == [where]
    assert deployment.hitl(run_id), "a refused request answered the approval"

    # --- the Borrador tab in the Airflow UI -----------------------------------------------------
    login(browser, deployment)
    browser.get(tab)
    _in_frame(browser)
    _frame_wait(browser, f"article#item-{CORRECTED}")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert f"Borrador del BOE del {DAY}" in text and EXCLUDED in text
    _frame_shot(browser, out / "borrador-castellano.png")
    browser.find_element(By.CSS_SELECTOR, "a[data-lang=va]").click()
    _frame_wait(browser, "a.current[data-lang=va]")
    assert "Esborrany del BOE" in browser.find_element(By.TAG_NAME, "body").text
    _frame_shot(browser, out / "borrador-valencia.png")
    browser.find_element(By.CSS_SELECTOR, "a[data-lang=bi]").click()
    _frame_wait(browser, "a.current[data-lang=bi]")
    _frame_shot(browser, out / "borrador-bilingue.png")

    item = _frame_wait(browser, f"article#item-{CORRECTED}")
    details = item.find_element(By.CSS_SELECTOR, "details.controls")
    if not details.get_attribute("open"):
        details.find_element(By.TAG_NAME, "summary").click()
    es_box = item.find_element(By.CSS_SELECTOR, "textarea[name=es]")
    va_box = item.find_element(By.CSS_SELECTOR, "textarea[name=va]")
    # A Valencian correction the automatic review refuses: shown by the item, nothing sent.
    va_box.clear()
    va_box.send_keys("Text inventat sense relació amb la font, de l'any 1999.")
    browser.find_element(By.CSS_SELECTOR, "button[data-option=Publicar]").click()
    problem = _frame_wait(browser, f'.problems[data-for="{CORRECTED}:va"]')
    assert "no pasa la revisión automática" in problem.text, problem.text
    _frame_shot(browser, out / "borrador-correccion-rechazada.png")
    assert deployment.hitl(run_id), "an answer with a refused correction was sent"

    title = _title(CORRECTED)
    es_text = f"{title} {SCRIPT}"
    va_text = _valencian(title)
    es_box.clear()
    es_box.send_keys(es_text)
    va_box.clear()
    va_box.send_keys(va_text)
    item.find_element(By.CSS_SELECTOR, "textarea[name=nota_item]").send_keys(
        f"Nota del elemento {SCRIPT}")
    other = browser.find_element(By.CSS_SELECTOR, f"article#item-{EXCLUDED}")
    other_details = other.find_element(By.CSS_SELECTOR, "details.controls")
    if not other_details.get_attribute("open"):
        other_details.find_element(By.TAG_NAME, "summary").click()
    other.find_element(By.CSS_SELECTOR, "input[name=excluir]").click()
    note = f"Revisado en el Borrador {SCRIPT}"
    browser.find_element(By.CSS_SELECTOR, "textarea#nota").send_keys(note)
    _frame_shot(browser, out / "borrador-revision.png", height=2200)
    browser.find_element(By.CSS_SELECTOR, "button[data-option=Publicar]").click()
    answered = _frame_wait(browser, "section#answer", timeout=90)
    assert "Publicar" in answered.text and settings.airflow_admin_user in answered.text
    assert SCRIPT in answered.text  # shown as typed, not run
    assert browser.execute_script("return window.__pwned") is None
    browser.execute_script("window.scrollTo(0, 0)")  # the answer, at the top
    _frame_shot(browser, out / "borrador-respondido.png")
    browser.switch_to.default_content()
    assert browser.execute_script("return window.__pwned") is None
    assert "pwned" not in browser.title

    assert deployment.wait_run(run_id) == "success", deployment.describe(run_id)

    # --- what Airflow recorded -----------------------------------------------------------------
    with deployment.api() as client:
        detail = client.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/approve/-1/"
                            "hitlDetails").json()
        logs = client.get("/api/v2/eventLogs", params={
            "dag_id": DAG, "run_id": run_id, "event": "update_hitl_detail"}).json()
    dump(out / "hitl-detail.json", detail)
    dump(out / "event-logs.json", logs)
    assert detail["response_received"] and detail["chosen_options"] == ["Publicar"]
    assert detail["responded_by_user"]["name"] == settings.airflow_admin_user
    assert detail["params_input"] == {
        "excluir": [EXCLUDED], "correcciones": {CORRECTED: es_text, f"{CORRECTED}:va": va_text},
        "notas": {CORRECTED: f"Nota del elemento {SCRIPT}"}, "nota": note,
        "draft_hash": draft_hash}
    entries = logs["event_logs"]
    assert [e["owner"] for e in entries] == [settings.airflow_admin_user], entries
    assert entries[0]["task_id"] == "approve"

    # Required Actions shows the same answer.
    browser.get(f"{base}/dags/{DAG}/runs/{run_id}/tasks/approve/required_actions")
    time.sleep(4)
    shown_ra = browser.find_element(By.TAG_NAME, "body").text
    shot(browser, out / "required-actions-answered.png", height=1600)
    assert "Publicar" in shown_ra, shown_ra[-2000:]

    # The published digest holds exactly the review.
    published = read_digest(RawStore(deployment.data / "raw"), date.fromisoformat(DAY))
    assert published is not None
    digest = published.model_dump(mode="json")
    dump(out / "published-digest.json", digest)
    assert digest["status"] == "published" and digest["version"] == 1
    assert digest["decision"]["reviewer"] == settings.airflow_admin_user
    assert digest["decision"]["note"] == note
    assert [e["boe_id"] for e in digest["excluded"]] == [EXCLUDED]
    items = [i for s in digest["sections"] for d in s["departments"]
             for i in (*d["items"], *d["compact"])]
    draft = read_digest(RawStore(deployment.data / "raw"), date.fromisoformat(DAY), draft=True)
    assert draft is not None
    assert [i["boe_id"] for i in items] == [i.boe_id for i in draft.all_items()
                                            if i.boe_id != EXCLUDED]
    published_item = next(i for i in items if i["boe_id"] == CORRECTED)
    assert [i["boe_id"] for i in items if i["review"]["edits"] or i["review"]["note"]] == \
        [CORRECTED]  # the other items as in the draft
    assert published_item["summary_es"]["resumen"] == es_text
    assert published_item["summary_va"]["resumen"] == va_text
    assert published_item["review"]["note"] == f"Nota del elemento {SCRIPT}"
    edits = published_item["review"]["edits"]
    assert [(e["language"], e["checks_passed"]) for e in edits] == [("es", True), ("va", True)]

    # A second reviewer sees the answer and cannot answer again.
    with httpx.Client(timeout=60) as http:
        second = _token(deployment, "segunda", "admin")
        again = http.get(page, params=query, headers={"Cookie": f"_token={second}"})
        assert "Respuesta ya dada" in again.text and 'id="review"' in again.text
        assert "button" not in again.text.split('id="review"')[1]
        twice = http.post(f"{base}/boeflow/respuesta", params=query,
                          headers={"Authorization": f"Bearer {second}"},
                          json={"option": "Rechazar", "draft_hash": draft_hash})
        assert twice.status_code == 409, twice.text
        # The published digests (nav entry), served from the raw store with a strict CSP.
        listing = http.get(f"{base}/boeflow/publicados", headers={"Cookie": f"_token={admin}"})
        assert listing.status_code == 200 and DAY in listing.text
        one = http.get(f"{base}/boeflow/publicados/{DAY}", headers={"Cookie": f"_token={admin}"})
        assert one.status_code == 200 and "sandbox" in one.headers["content-security-policy"]
        assert "&lt;script&gt;" in one.text and SCRIPT not in one.text
    browser.get(f"{base}/boeflow/publicados/{DAY}")
    time.sleep(1)
    assert SCRIPT in browser.find_element(By.TAG_NAME, "body").text
    shot(browser, out / "publicado.png", height=1600)

    # The review deadline passed before the approval: the reviewers were reminded.
    rcpts, reminder = _wait_mail(inbox, f"Recordatorio: el resumen del BOE del {DAY}")
    assert rcpts == [REVIEWER] and "/borrador" in body_text(reminder, "plain")

    for name in ("borrador-castellano.png", "borrador-valencia.png", "borrador-revision.png",
                 "borrador-respondido.png", "required-actions-answered.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, name
