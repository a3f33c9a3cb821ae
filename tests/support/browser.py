"""Headless Chromium for the tests that look at pages (Debian's chromium driven by Selenium
through Debian's chromedriver; nothing is downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


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
