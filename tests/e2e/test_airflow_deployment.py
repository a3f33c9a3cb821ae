"""boeflow as users run it in Airflow: a real local deployment (`boeflow airflow up`: api-server,
scheduler, dag-processor, triggerer, Celery worker, Redis, PostgreSQL) with the real
Elasticsearch, the recorded BOE replayed on loopback and the smoke models.

* the web UI in headless Chromium: log in, trigger boe_daily with the form for 2024-11-06 and
  one section, wait for the human review, approve it in "Required Actions" with one item
  excluded, see the run succeed; every task ran on the Celery worker; the digest is
  published (screenshots of the form, the grid and Required Actions are saved and checked);
* invalid trigger input is refused by the form, and no run starts;
* `airflow backfill create` over recorded days processes each day once;
* a Celery worker killed (kill -9) in the middle of an index task: Airflow retries the task
  and the day ends with the same Elasticsearch contents as an undisturbed run;
* the approval's timeout with the real scheduler and triggerer: nothing is published without
  a human, unless BOEFLOW_DIGEST_PUBLISH_ON_TIMEOUT.

The tests share one deployment and run in this order (each builds on the previous state)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from boeflow.airflow.wiring import SECTION_NAMES
from boeflow.core.settings import Settings
from boeflow.index.client import get_client
from boeflow.index.mapping import IndexNames
from boeflow.state.db import connect
from boeflow.state.records import day_status
from boeflow_ops.services import airflow as af
from boeflow_ops.services.common import processes
from tests.support.browser import headless_chromium, login, shot, wait_for
from tests.support.local_airflow import (
    DAG,
    LocalAirflow,
    celery_ran,
    dump,
    running_deployment,
)

pytestmark = pytest.mark.e2e
PREFIX = "e2e-af-"
UI_DAY = "2024-11-06"
EXCLUDED = "BOE-A-2024-22930"  # section I of 2024-11-06, excluded by the reviewer
SECTION_I = "I. Disposiciones generales"


@pytest.fixture(scope="module")
def deployment(live_settings: Settings, smoke_models_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    with running_deployment(live_settings, smoke_models_dir,
                            tmp_path_factory.mktemp("airflow-e2e"), PREFIX,
                            name="airflow-e2e",
                            label="Airflow e2e (screenshots, run details)") as deployment:
        yield deployment


# --- the browser --------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def one_run_at_a_time(deployment: LocalAirflow) -> Iterator[None]:
    """A test that fails mid-run must not leave its run (e.g. waiting for the review) in front
    of the next test's: each test ends with no unfinished run."""
    yield
    deployment.fail_unfinished()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium((1400, 1000), "en-US") as driver:
        yield driver


def _open_trigger_form(driver: webdriver.Chrome, deployment: LocalAirflow) -> WebElement:
    driver.get(f"{deployment.settings.airflow_url}/dags/{DAG}")
    wait_for(driver, "[data-testid=trigger-dag-button]").click()
    wait_for(driver, "[data-testid=trigger-dag-submit]")
    return wait_for(driver, "input#element_date")


def _form_text(driver: webdriver.Chrome) -> str:
    dialogs = [d for d in driver.find_elements(By.CSS_SELECTOR, "[role=dialog]")
               if d.is_displayed()]
    return "\n".join(d.text for d in dialogs)


def _pick_section(driver: webdriver.Chrome, label: str) -> None:
    """Choose one entry of the multi-select "Secciones" as a person does: open it, type,
    pick the option."""
    box = driver.find_element(By.XPATH, "//input[@name='element_sections']/ancestor::*"
                              "[.//input[@role='combobox']][1]//input[@role='combobox']")
    box.click()
    box.send_keys(label[:12])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        options = [o for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]")
                   if o.is_displayed() and o.text.strip() == label]
        if options:
            options[0].click()
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no option {label!r} in the sections list")
    # Close the list by clicking the form's title (Escape would close the whole form).
    driver.find_element(By.XPATH, "//*[@role='dialog']//h2 | //*[@role='dialog']"
                        "//*[contains(@class, 'dialog__title')]").click()


def _type_in_json_editor(driver: webdriver.Chrome, conf: dict[str, Any]) -> None:
    """Replace the content of the form's "Configuration JSON" editor (Monaco): focus its input,
    select all, delete, paste. Pasting avoids racing the editor's automatic closing of brackets
    and quotes; where the clipboard is refused (some headless CI hosts), or a busy page drops
    the keys, the next attempt types the text (Monaco types over the brackets it closed)."""
    text = json.dumps(conf)
    origin = driver.execute_script("return window.location.origin")
    with contextlib.suppress(Exception):
        driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    lines = wait_for(driver, "[role=dialog] .view-lines")
    pasted = driver.execute_async_script(
        "navigator.clipboard.writeText(arguments[0])"
        ".then(() => arguments[1](true), () => arguments[1](false))", text)
    shown = ""
    for attempt in ("paste" if pasted else "type", "type", "type"):
        ActionChains(driver).move_to_element(lines).click().perform()
        # The editor's keyboard input: an EditContext element in current Chromium, a textarea
        # in older ones (the read-only IME textarea next to it must not take the focus).
        driver.execute_script(
            "const input = arguments[0].closest('.monaco-editor')"
            ".querySelector('[role=textbox]:not([readonly])');"
            "if (input) { input.focus(); }", lines)
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL) \
            .send_keys(Keys.DELETE).perform()
        if attempt == "paste":
            ActionChains(driver).key_down(Keys.CONTROL).send_keys("v").key_up(Keys.CONTROL) \
                .perform()
        else:
            ActionChains(driver).send_keys(text).perform()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = driver.find_element(By.CSS_SELECTOR, "[role=dialog] .view-lines").text
            with contextlib.suppress(ValueError):
                if json.loads(shown.replace("\u00a0", " ")) == conf:
                    return
            time.sleep(0.3)
    raise AssertionError(f"could not enter {text} in the JSON editor: {shown!r}")


def _set_date(field: WebElement, value: date) -> None:
    field.click()
    field.send_keys(value.strftime("%m%d%Y"))  # the en-US date picker: mm/dd/yyyy


# --- 1. invalid input is refused by the form ------------------------------------------------

def test_invalid_trigger_input_is_refused_by_the_form(deployment: LocalAirflow,
                                                      browser: webdriver.Chrome) -> None:
    login(browser, deployment)
    runs_before = len(deployment.runs())
    # A day that does not exist cannot even be entered in the form's date picker.
    field = _open_trigger_form(browser, deployment)
    field.click()
    field.send_keys("02302024")
    assert field.get_attribute("value") in ("", None), field.get_attribute("value")
    # Nor can a section the BOE does not have: the list offers only the nine real ones.
    box = browser.find_element(By.XPATH, "//input[@name='element_sections']/ancestor::*"
                               "[.//input[@role='combobox']][1]//input[@role='combobox']")
    box.click()
    offered = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]")
               if o.is_displayed()]
    assert offered == list(SECTION_NAMES.values()), offered
    box.send_keys("Sección 9")
    time.sleep(1)
    assert not [o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]")
                if o.is_displayed()]
    # The same values sent as the run's configuration JSON ("Advanced Options") are refused
    # by the DAG's JSON schema when the run would be created: an error, no run.
    for conf, message in (({"date": "2024-02-30"}, "is not a 'date'"),
                          ({"date": UI_DAY, "sections": ["9"]}, "'9' is not one of")):
        _open_trigger_form(browser, deployment)
        browser.find_element(By.XPATH, "//button[contains(., 'Advanced Options')]").click()
        _type_in_json_editor(browser, conf)
        browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()
        deadline = time.monotonic() + 30
        while message not in _form_text(browser) and time.monotonic() < deadline:
            time.sleep(0.5)
        shot(browser, deployment.artifacts / f"refused-{next(iter(conf.values()))}.png")
        assert message in _form_text(browser), _form_text(browser)[-1500:]
    # The REST API applies the same schema.
    with deployment.api() as client:
        for conf in ({"date": "2024-02-30"}, {"sections": ["9"]}, {"languages": ["va"]},
                     {"max_items": 0}):
            response = client.post(f"/api/v2/dags/{DAG}/dagRuns",
                                   json={"logical_date": None, "conf": conf})
            assert response.status_code == 400, (conf, response.text)
            assert "Invalid input for param" in response.json()["detail"]
    assert len(deployment.runs()) == runs_before


# --- 2. the UI flow ---------------------------------------------------------------------------

def _ui_run_id(deployment: LocalAirflow) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [r for r in deployment.runs()
                if r["run_type"] == "manual" and (r["conf"] or {}).get("date") == UI_DAY]
        if mine:
            return str(mine[-1]["dag_run_id"])
        time.sleep(1)
    raise AssertionError("the trigger form created no run")


def test_trigger_review_and_publish_in_the_web_ui(deployment: LocalAirflow,
                                                  browser: webdriver.Chrome) -> None:
    out = deployment.artifacts
    login(browser, deployment)
    field = _open_trigger_form(browser, deployment)
    _set_date(field, date.fromisoformat(UI_DAY))
    assert field.get_attribute("value") == UI_DAY
    _pick_section(browser, SECTION_I)
    form = _form_text(browser)
    for text in ("Fecha del BOE", "Secciones", SECTION_I, "Forzar", "Idiomas",
                 "Castellano (resumen)", "Máximo de elementos"):
        assert text in form, text
    shot(browser, out / "trigger-form.png", height=1800)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()
    run_id = _ui_run_id(deployment)
    assert deployment.run(run_id)["conf"]["sections"] == ["1"]

    # The run reaches the human review; the grid shows it waiting, batches named by BOE id.
    pending = deployment.wait_hitl(run_id)
    assert pending["subject"] == f"Revisar el resumen del BOE del {UI_DAY}"
    assert "BOE-A-2024-22928" in pending["body"]
    tis = {(t["task_id"], t["map_index"]): t for t in deployment.task_instances(run_id)}
    batches = [t for (task_id, _), t in tis.items() if task_id == "lote.index"]
    assert [t["rendered_map_index"] for t in batches] == ["BOE-A-2024-22928"]
    assert tis[("approve", -1)]["state"] == "deferred" or \
        tis[("approve", -1)]["state"] == "awaiting_input"
    settings = deployment.settings
    browser.get(f"{settings.airflow_url}/dags/{DAG}/runs/{run_id}")
    wait_for(browser, "[data-testid=expand-all-button]").click()
    time.sleep(2)
    shot(browser, out / "grid-awaiting-review.png")

    # Required Actions: the list, then the action; exclude one item, publish.
    browser.get(f"{settings.airflow_url}/required_actions")
    link = wait_for(browser, "a[href*='/tasks/approve/required_actions']")
    assert "Revisar el resumen del BOE del 2024-11-06" in browser.page_source
    shot(browser, out / "required-actions.png")
    link.click()
    excluded = wait_for(browser, "textarea#element_excluir")
    assert "Elementos que necesitan atención" in browser.page_source
    excluded.send_keys(EXCLUDED)
    browser.find_element(By.CSS_SELECTOR, "input#element_nota").send_keys(
        "Revisado en la interfaz de Airflow")
    shot(browser, out / "required-action-form.png", height=2000)
    publish = browser.find_element(By.CSS_SELECTOR, "[data-testid=hitl-option-Publicar]")
    assert publish.is_enabled()
    publish.click()

    assert deployment.wait_run(run_id) == "success", deployment.describe(run_id)
    browser.get(f"{settings.airflow_url}/dags/{DAG}/runs/{run_id}")
    wait_for(browser, "[data-testid=expand-all-button]").click()
    shot(browser, out / "grid-success.png")

    # Every task ran on the Celery worker of the deployment (its log received each one).
    ran = celery_ran(deployment, run_id)
    dump(out / "ui-run-task-instances.json", ran)
    assert {r["task_id"] for r in ran} >= {"which_day", "fetch", "plan", "lote.index",
                                           "lote.enrich", "review", "build_digest", "approve",
                                           "publish", "deliver"}
    host = socket.gethostname()  # what the worker reports (Airflow: hostname_callable)
    for row in ran:
        assert row["hostname"] == host, row
        assert row["worker_received"], row
    assert af.worker_name() in deployment.worker_log()

    # The digest is published with the reviewer's decision.
    digest = json.loads(_current(deployment, "2024/11/06").read_text(encoding="utf-8"))
    assert digest["status"] == "published" and digest["version"] == 1
    assert digest["decision"]["reviewer"] == settings.airflow_admin_user
    assert [e["boe_id"] for e in digest["excluded"]] == [EXCLUDED]
    ids = [i["boe_id"] for s in digest["sections"] for d in s["departments"]
           for i in (*d["items"], *d["compact"])]
    assert EXCLUDED not in ids and "BOE-A-2024-22928" in ids
    assert {s["code"] for s in digest["sections"]} == {"1"}
    with connect(settings) as conn:
        status = day_status(conn, date.fromisoformat(UI_DAY))
    assert status is not None and status["day"]["status"] == "published"
    assert [d["version"] for d in status["digests"]] == [1]


def test_screenshots_were_saved(deployment: LocalAirflow) -> None:
    """The pictures a person would see exist and are real page renders (checked by eye
    when the test was written; here: present, PNG, not blank)."""
    for name in ("trigger-form.png", "grid-awaiting-review.png", "required-actions.png",
                 "required-action-form.png", "grid-success.png"):
        path = deployment.artifacts / name
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000, (name, len(data))


# --- helpers shared by the operations tests --------------------------------------------------

def _es_day(deployment: LocalAirflow, ids: list[str]) -> dict[str, Any]:
    """What Elasticsearch holds for ``ids``: each document's chunk ids and content hash."""
    names = IndexNames(PREFIX)
    client = get_client(deployment.settings)
    try:
        client.indices.refresh(index=f"{names.documents},{names.chunks}")
        out: dict[str, Any] = {}
        for boe_id in ids:
            chunks = client.search(index=names.chunks, size=2000, source=False,
                                   query={"term": {"doc_id": boe_id}})["hits"]["hits"]
            doc = client.get(index=names.documents, id=boe_id, ignore=[404])  # type: ignore[call-arg]
            out[boe_id] = {"chunks": sorted(h["_id"] for h in chunks),
                           "content_hash": (doc.get("_source") or {}).get("content_hash")}
        return out
    finally:
        client.close()


def _current(deployment: LocalAirflow, day: str) -> Path:
    """The day's current published digest.json (through its current.json pointer)."""
    folder = deployment.data / "raw" / "digests" / day
    pointer = json.loads((folder / "current.json").read_text(encoding="utf-8"))
    return folder / f"v{pointer['version']}" / "digest.json"


def _approve_pending(deployment: LocalAirflow, run_ids: list[str]) -> list[str]:
    answered = []
    for detail in deployment.hitl():
        if detail["task_instance"]["dag_run_id"] in run_ids:
            deployment.answer(detail, "Publicar", {"excluir": [], "correcciones": {},
                                                   "notas": {}, "nota": "backfill"})
            answered.append(detail["task_instance"]["dag_run_id"])
    return answered


def _wait_runs(deployment: LocalAirflow, run_ids: list[str], timeout: float = 1500) -> None:
    """Wait for ``run_ids`` to finish, answering their approval requests ("Publicar") as a
    reviewer would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _approve_pending(deployment, run_ids)
        states = {r["dag_run_id"]: r["state"] for r in deployment.runs()
                  if r["dag_run_id"] in run_ids}
        if len(states) == len(run_ids) and set(states.values()) <= {"success", "failed"}:
            return
        time.sleep(4)
    raise AssertionError(f"runs not finished in {timeout}s: "
                         + "; ".join(f"{r}: {deployment.describe(r)}" for r in run_ids))


def _backfill(deployment: LocalAirflow, start: str, end: str, conf: dict[str, Any]
              ) -> list[dict[str, Any]]:
    before = {r["dag_run_id"] for r in deployment.runs() if r["run_type"] == "backfill"}
    result = deployment.airflow_cli("backfill", "create", "--dag-id", DAG, "--from-date", start,
                                    "--to-date", end, "--dag-run-conf", json.dumps(conf),
                                    "--max-active-runs", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    deadline = time.monotonic() + 60
    def created() -> list[dict[str, Any]]:
        return [r for r in deployment.runs()
                if r["run_type"] == "backfill" and r["dag_run_id"] not in before]

    while time.monotonic() < deadline and not created():
        time.sleep(2)
    time.sleep(5)
    new = created()
    _wait_runs(deployment, [r["dag_run_id"] for r in new])
    # The scheduler then closes the backfill (one backfill per DAG at a time).
    deadline = time.monotonic() + 120
    while True:
        with deployment.api() as client:
            backfills = client.get("/api/v2/backfills", params={"dag_id": DAG}).json()
        if all(b["completed_at"] for b in backfills["backfills"]):
            break
        assert time.monotonic() < deadline, backfills
        time.sleep(3)
    return created()


# --- 3. backfill -------------------------------------------------------------------------------

BACKFILL_WEEK = ["2024-11-06", "2024-11-07", "2024-11-08", "2024-11-09", "2024-11-11",
                 "2024-11-12", "2024-11-13"]  # Monday-Saturday: no run on Sunday the 10th
RECORDED = ["2024-11-06", "2024-11-12", "2024-11-13", "2025-03-07"]  # the BOEs the replay has


def test_backfill_processes_each_recorded_day_once(deployment: LocalAirflow) -> None:
    """`airflow backfill create` over the recorded week of 2024-11-06 and over 2025-03-07
    (section I): one run per BOE day, each day processed once; running it again creates
    nothing and changes nothing."""
    conf = {"sections": ["1"]}
    settings = deployment.settings
    with connect(settings) as conn:
        before_06 = day_status(conn, date.fromisoformat(UI_DAY))
    published_from_ui = bool(before_06 and before_06["digests"])
    week = _backfill(deployment, "2024-11-06T00:00:00+01:00", "2024-11-13T23:00:00+01:00",
                     conf)
    march = _backfill(deployment, "2025-03-07T00:00:00+01:00", "2025-03-07T23:00:00+01:00",
                      conf)
    runs = week + march
    dump(deployment.artifacts / "backfill-runs.json", runs)
    days = sorted(r["logical_date"][:10] for r in runs)
    assert days == [*BACKFILL_WEEK, "2025-03-07"], days
    assert {r["run_type"] for r in runs} == {"backfill"}
    assert all(r["state"] == "success" for r in runs), [
        (r["logical_date"], deployment.describe(r["dag_run_id"])) for r in runs
        if r["state"] != "success"]
    by_day = {r["logical_date"][:10]: r["dag_run_id"] for r in runs}

    with connect(settings) as conn:
        status = {d: day_status(conn, date.fromisoformat(d)) for d in by_day}
    for day, run_id in by_day.items():
        st = status[day]
        assert st is not None, day
        # Every step of the day was done by the day's backfill run, once.
        fetch = next(t for t in st["tasks"] if t["task"] == "fetch")
        assert fetch["run_id"] == run_id and fetch["status"] == "success", (day, fetch)
        if day in RECORDED:
            assert st["day"]["status"] == "published", (day, st["day"])
            assert [d["version"] for d in st["digests"]] == [1], (day, st["digests"])
        else:
            assert st["day"]["status"] == "no_publication", (day, st["day"])
            assert st["digests"] == []
    # 2024-11-06 published from the UI (the test above): the backfill found nothing new to
    # ask; run alone, the backfill's review published it.
    approve_06 = next(t for t in status["2024-11-06"]["tasks"] if t["task"] == "approve")
    if published_from_ui:
        assert approve_06["status"] == "skipped", approve_06
        assert approve_06["detail"]["reason"] == "already_published"
    else:
        assert approve_06["status"] == "success", approve_06

    # Elasticsearch holds each indexed document once, with exactly the chunks its index
    # task reported.
    for day in ("2024-11-13",):
        for ti in deployment.task_instances(by_day[day]):
            if ti["task_id"] != "lote.index":
                continue
            with deployment.api() as client:
                xcom = client.get(
                    f"/api/v2/dags/{DAG}/dagRuns/{by_day[day]}/taskInstances/lote.index/"
                    "xcomEntries/return_value", params={"map_index": ti["map_index"],
                                                        "deserialize": True}).json()
            report = xcom["value"]
            report = json.loads(report) if isinstance(report, str) else report
            held = _es_day(deployment, report["indexed"])
            for boe_id in report["indexed"]:
                chunks = held[boe_id]["chunks"]
                assert len(chunks) == len(set(chunks)) > 0, boe_id
            assert sum(len(h["chunks"]) for h in held.values()) == report["chunks"], report

    # The same backfill again: every date already has its run, nothing is created or redone.
    again = deployment.airflow_cli("backfill", "create", "--dag-id", DAG, "--from-date",
                                   "2024-11-06T00:00:00+01:00", "--to-date",
                                   "2024-11-13T23:00:00+01:00", "--dag-run-conf",
                                   json.dumps(conf))
    time.sleep(10)
    assert len([r for r in deployment.runs() if r["run_type"] == "backfill"]) == len(runs), \
        (again.stdout + again.stderr)[-2000:]
    with connect(settings) as conn:
        for day in RECORDED:
            st = day_status(conn, date.fromisoformat(day))
            assert st is not None and [d["version"] for d in st["digests"]] == [1]


# --- 4. a worker killed in the middle of an index task -------------------------------------------

KILL_DAY = "2024-11-13"
KILL_DOC = "BOE-A-2024-23543"  # section I of 2024-11-13, the document the batch indexes


def _descendants(pid: int) -> set[int]:
    table = processes()
    children: dict[int, list[int]] = {}
    for child, info in table.items():
        children.setdefault(info.ppid, []).append(child)
    found = {pid} | {p for p, info in table.items() if info.pgrp == pid}
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _delete_document(deployment: LocalAirflow, boe_id: str, chunk_ids: list[str]) -> None:
    names = IndexNames(PREFIX)
    client = get_client(deployment.settings)
    try:
        for chunk_id in chunk_ids:
            client.delete(index=names.chunks, id=chunk_id, refresh=False)
        client.delete(index=names.documents, id=boe_id)
        client.indices.refresh(index=f"{names.documents},{names.chunks}")
    finally:
        client.close()


def test_worker_killed_mid_index_is_retried_to_the_same_contents(
        deployment: LocalAirflow) -> None:
    undisturbed = _es_day(deployment, [KILL_DOC])  # as the backfill's run left it
    assert undisturbed[KILL_DOC]["chunks"] and undisturbed[KILL_DOC]["content_hash"]
    _delete_document(deployment, KILL_DOC, undisturbed[KILL_DOC]["chunks"])
    assert _es_day(deployment, [KILL_DOC])[KILL_DOC] == {"chunks": [], "content_hash": None}

    run_id = deployment.trigger({"date": KILL_DAY, "sections": ["1"]})
    worker = af.component_pid(deployment.layout, "celery-worker")
    assert worker is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        index = [t for t in deployment.task_instances(run_id) if t["task_id"] == "lote.index"]
        if index and index[0]["state"] == "running":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"lote.index never ran: {deployment.describe(run_id)}")
    time.sleep(1.5)
    victims = _descendants(worker)
    for pid in victims:  # kill -9 the worker and every process it started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # Killed in the middle: the document record (written last) is not there yet.
    assert _es_day(deployment, [KILL_DOC])[KILL_DOC]["content_hash"] is None, \
        "the index task finished before the kill; nothing was interrupted"

    # Airflow notices the dead task (no heartbeat) and schedules the next attempt; a new
    # worker (as an operator would restart it) runs it.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ti = next(t for t in deployment.task_instances(run_id) if t["task_id"] == "lote.index")
        if ti["state"] in ("up_for_retry", "scheduled", "queued") or ti["try_number"] > 1:
            break
        time.sleep(2)
    else:
        raise AssertionError(f"the killed task was not failed for retry: {ti}")
    noticed = time.monotonic() - killed_at
    deployment.up()
    _wait_runs(deployment, [run_id], timeout=900)
    assert deployment.run(run_id)["state"] == "success", deployment.describe(run_id)

    with deployment.api() as client:
        tries = client.get(f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/lote.index/0/"
                           "tries").json()["task_instances"]
    dump(deployment.artifacts / "killed-index-tries.json", tries)
    states = [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])]
    assert len(states) >= 2 and states[-1] == "success", states
    assert states[0] in ("failed", "up_for_retry"), states
    assert _es_day(deployment, [KILL_DOC]) == undisturbed
    print(f"\nworker killed; the dead index task was failed for retry after {noticed:.0f}s")


# --- 5. the approval's timeout --------------------------------------------------------------------

TIMEOUT_DAY = "2025-03-07"


def _restart_with(deployment: LocalAirflow, **extra: str) -> None:
    """Restart the processes that build the approval step with other settings: the worker
    (it parses the DAG file and runs the step, so its settings decide the timeout and the
    default answer) and the dag-processor (what the UI shows)."""
    for component in ("dag-processor", "celery-worker"):
        deployment.stop_component(component)
    deployment.up(**extra)
    deployment.env.update(extra)


def _timeout_run(deployment: LocalAirflow) -> tuple[str, dict[str, Any]]:
    run_id = deployment.trigger({"date": TIMEOUT_DAY, "sections": ["1", "3"]})
    pending = deployment.wait_hitl(run_id)
    assert deployment.wait_run(run_id, timeout=600) == "success", deployment.describe(run_id)
    with connect(deployment.settings) as conn:
        status = day_status(conn, date.fromisoformat(TIMEOUT_DAY))
    assert status is not None
    return run_id, {"pending": pending, "status": status}


def test_approval_timeout_publishes_nothing_without_a_human(deployment: LocalAirflow) -> None:
    digest = _current(deployment, "2025/03/07")
    before = json.loads(digest.read_text(encoding="utf-8"))
    assert before["version"] == 1  # published by the backfill, with a reviewer
    _restart_with(deployment, BOEFLOW_DIGEST_REVIEW_TIMEOUT_HOURS="0.005")  # 18 s
    run_id, seen = _timeout_run(deployment)
    assert seen["pending"]["defaults"] == ["Rechazar"]
    approve = next(t for t in deployment.task_instances(run_id) if t["task_id"] == "approve")
    assert approve["state"] == "success"
    # Nobody answered: the day stays pending, nothing new is published.
    assert json.loads(digest.read_text(encoding="utf-8")) == before
    status = seen["status"]
    assert status["decisions"][-1]["decision"] == "timed_out", status["decisions"]
    assert status["decisions"][-1]["reviewer"] is None
    assert [d["version"] for d in status["digests"]] == [1]

    # Configured to publish on timeout: published, marked as not reviewed.
    _restart_with(deployment, BOEFLOW_DIGEST_PUBLISH_ON_TIMEOUT="true")
    run_id, seen = _timeout_run(deployment)
    assert seen["pending"]["defaults"] == ["Publicar"]
    after = json.loads(_current(deployment, "2025/03/07").read_text(encoding="utf-8"))
    assert after["version"] == 2 and after["decision"]["decision"] == "without_review"
    assert seen["status"]["decisions"][-1]["decision"] == "without_review"
    assert [d["version"] for d in seen["status"]["digests"]] == [1, 2]
