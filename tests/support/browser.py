"""Headless Chromium for the tests that look at pages (Debian's chromium driven by Selenium
through Debian's chromedriver; nothing is downloaded)."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

if TYPE_CHECKING:
    from tests.support.local_airflow import LocalAirflow


@contextmanager
def headless_chromium(window: tuple[int, int], lang: str, *, extra_args: tuple[str, ...] = (),
                      logs: bool = False) -> Iterator[webdriver.Chrome]:
    """``extra_args``: more Chromium switches; ``logs``: keep the browser console and the
    DevTools performance log (network requests, navigations) for ``driver.get_log``."""
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("Debian's chromium and chromium-driver are required "
                    "(scripts/bootstrap.sh installs them)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window[0]},{window[1]}", f"--lang={lang}", *extra_args):
        options.add_argument(arg)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, css: str, timeout: float = 60) -> WebElement:
    """The first displayed element matching ``css``; a screenshot and a clear failure if
    none shows within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        if found:
            return found[0]
        time.sleep(0.5)
    shot(driver, Path("/tmp") / "boeflow-ui-timeout.png")
    raise AssertionError(f"{css} not shown within {timeout}s on {driver.current_url}")


def shot(driver: webdriver.Chrome, path: Path, height: int = 1000) -> Path:
    """A screenshot of the page as a person sees it, ``height`` pixels tall."""
    ActionChains(driver).move_by_offset(0, 0).move_to_element_with_offset(
        driver.find_element(By.TAG_NAME, "body"), 5, 5).perform()  # no tooltip in the way
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False})
    time.sleep(1.0)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def login(driver: webdriver.Chrome, deployment: LocalAirflow) -> None:
    """Log in to the deployment's Airflow UI as its admin."""
    from boeflow_ops.services import airflow as af

    settings = deployment.settings
    driver.get(f"{settings.airflow_url}/auth/login")
    wait_for(driver, "input[name=username]").send_keys(settings.airflow_admin_user)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(
        af.admin_password(settings))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, "[data-testid=nav-dags-link]")
