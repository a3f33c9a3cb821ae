"""Issue 17, findings 3 and 4 in a real browser: every link of a digest built from a hostile BOE
day (tests/support/hostile_digest.py: javascript:/data:/off-host url_pdf, url_html, url_xml, a
Markdown breakout, a ``javascript:…//www.boe.es/eli/…`` rdf:about) is clicked in headless
Chromium — the draft and the published page as written to the raw store, the HTML e-mail, and
digest.md and the e-mail's text part as a GitHub-like Markdown renderer shows them. Each page
is also clicked with its content-security policy removed (mail clients ignore it): the links
are safe by construction, not only by the policy. Nothing but https URLs of the BOE may be
requested as a document, no script may run (every hostile payload calls alert()), and the
policy itself must block nothing the page needs. DNS is off in the browser
(``--host-resolver-rules``), so nothing leaves the machine. A control page with a live
javascript: link and an off-host link proves the detector sees both. Screenshots are saved
under the test's directory (and were looked at)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from markdown_it import MarkdownIt
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, UnexpectedAlertPresentException
from selenium.webdriver.common.by import By

from boeflow.core.site import BOE_HOSTS
from boeflow.digest.build import ReviewInput, apply_review
from boeflow.digest.mail import digest_mails
from boeflow.digest.publish import write_digest
from tests.support.browser import headless_chromium
from tests.support.hostile_digest import hostile_day

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    # No name resolves: a click on a link starts a navigation we can see, and it fails at once.
    with headless_chromium((1280, 900), "es", logs=True,
                           extra_args=("--host-resolver-rules=MAP * ~NOTFOUND",)) as driver:
        driver.set_page_load_timeout(10)
        yield driver


@dataclass
class Clicks:
    links: int = 0
    navigations: list[str] = field(default_factory=list)  # document URLs requested
    scripts: list[str] = field(default_factory=list)  # alert texts: a script ran
    offenders: list[str] = field(default_factory=list)


def _documents_requested(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent" and \
                message["params"].get("type") == "Document":
            urls.append(message["params"]["request"]["url"])
        elif message.get("method") == "Page.frameRequestedNavigation":
            urls.append(message["params"]["url"])
    return urls


def _alert(driver: webdriver.Chrome) -> str | None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return None
    text = alert.text
    alert.dismiss()
    return text


def _allowed(url: str, page: str) -> bool:
    parts = urlsplit(url)
    if url.split("#")[0] == page:  # an in-page anchor
        return True
    return parts.scheme == "https" and parts.netloc in BOE_HOSTS


def click_every_link(driver: webdriver.Chrome, page: Path) -> Clicks:
    """Load ``page``, then click each of its links (details opened, so every link is
    visible) on a fresh load, recording the documents requested and any alert."""
    uri = page.as_uri()
    result = Clicks()
    driver.execute_cdp_cmd("Page.enable", {})
    driver.execute_cdp_cmd("Network.enable", {})
    driver.get(uri)
    if (text := _alert(driver)) is not None:
        result.scripts.append(f"on load: alert({text})")
    count = len(driver.find_elements(By.CSS_SELECTOR, "a[href]"))
    result.links = count
    fresh = False
    for index in range(count):
        if not fresh:
            try:
                driver.get(uri)
            except UnexpectedAlertPresentException as exc:  # a script ran as the page left
                result.scripts.append(f"on leaving: {exc.alert_text}")
            if (text := _alert(driver)) is not None:
                result.scripts.append(f"on load: alert({text})")
            driver.execute_script("document.querySelectorAll('details').forEach("
                                  "function (d) { d.open = true; });")
        driver.get_log("performance")  # drop what the load logged
        # A real mouse click (trusted events, as from a reader) in the middle of the link.
        href, x, y = driver.execute_script(
            "const a = document.querySelectorAll('a[href]')[arguments[0]];"
            "a.scrollIntoView({block: 'center'}); const r = a.getClientRects()[0];"
            "return [a.href, r.left + r.width / 2, r.top + r.height / 2];", index)
        for kind in ("mousePressed", "mouseReleased"):
            driver.execute_cdp_cmd("Input.dispatchMouseEvent", {
                "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
        in_page = href.startswith(uri + "#")
        # An anchor moves within the page at once; anything else gets up to 0.3 s to start
        # its navigation (it starts within milliseconds; the error page follows).
        requested: list[str] = []
        deadline = time.monotonic() + (0.05 if in_page else 0.3)
        while time.monotonic() < deadline:
            time.sleep(0.02)
            requested += _documents_requested(driver)
            if requested:
                time.sleep(0.05)
                break
        requested += _documents_requested(driver)
        fresh = in_page and driver.current_url.startswith(uri)
        if (text := _alert(driver)) is not None:
            result.scripts.append(f"{href}: alert({text})")
        for url in requested:
            result.navigations.append(url)
            if not _allowed(url, uri):
                result.offenders.append(f"{href} -> {url}")
        current = driver.current_url
        if not (_allowed(current, uri) or current.startswith("chrome-error://")):
            result.offenders.append(f"{href} -> now at {current}")
    return result


def _screenshot(driver: webdriver.Chrome, page: Path, png: Path) -> None:
    driver.get(page.as_uri())
    driver.execute_script("document.querySelectorAll('details').forEach("
                          "function (d) { d.open = true; });")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": min(int(height), 9000), "deviceScaleFactor": 1,
        "mobile": False})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png",
                                                             "captureBeyondViewport": True})
    png.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _gfm_page(markdown: str, title: str) -> str:
    body = MarkdownIt("gfm-like").render(markdown)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body>{body}</body></html>")


def test_the_detector_sees_a_script_link_and_an_off_host_link(
        browser: webdriver.Chrome, tmp_path: Path) -> None:
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><p><a href='javascript:alert(99)'>js</a> "
                       "<a href='https://evil.example/x'>off</a> "
                       "<a href='https://www.boe.es/boe/dias/2024/11/13/'>boe</a></p>",
                       encoding="utf-8")
    clicks = click_every_link(browser, control)
    assert clicks.links == 3
    assert clicks.scripts and "99" in clicks.scripts[0], clicks
    assert any("evil.example" in o for o in clicks.offenders), clicks
    assert "https://www.boe.es/boe/dias/2024/11/13/" in clicks.navigations


def test_every_link_of_a_hostile_digest_leads_only_to_the_boe(
        browser: webdriver.Chrome, tmp_path: Path) -> None:
    day = hostile_day(tmp_path / "data")
    final = apply_review(day.draft, ReviewInput(
        decision="approved", reviewer="revisora",
        decided_at=datetime(2024, 11, 13, 23, 30, tzinfo=UTC)), lambda *_: (True, []))
    final.version = 1
    drafts = write_digest(day.store, day.draft, draft=True)
    published = write_digest(day.store, final)
    mail = digest_mails(final, ["lector@example.org"], [])[0].message("boeflow@example.org")
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    pages = {"draft": Path(day.store.path(drafts["html"])),
             "published": Path(day.store.path(published["html"]))}
    (tmp_path / "mail.html").write_text(html_part.get_content(), encoding="utf-8")
    pages["mail-html"] = tmp_path / "mail.html"
    for name, text in (("draft-md", day.store.read(drafts["md"]).decode()),
                       ("published-md", day.store.read(published["md"]).decode()),
                       ("mail-text", text_part.get_content())):
        page = tmp_path / f"{name}.html"
        page.write_text(_gfm_page(text, name), encoding="utf-8")
        pages[name] = page
    for name in ("published", "mail-html"):  # the same pages without their policy
        html = pages[name].read_text(encoding="utf-8")
        assert CSP_META.search(html), name
        page = tmp_path / f"{name}-no-csp.html"
        page.write_text(CSP_META.sub("", html), encoding="utf-8")
        pages[f"{name}-no-csp"] = page

    report = {}
    for name, page in pages.items():
        clicks = click_every_link(browser, page)
        report[name] = clicks
        assert clicks.links >= 20, (name, clicks.links)
        assert clicks.scripts == [], (name, clicks.scripts)
        assert clicks.offenders == [], (name, clicks.offenders)
        boe = [u for u in clicks.navigations if not u.startswith("file:")]
        assert boe and all(urlsplit(u).scheme == "https" for u in boe), name
    # The hostile item's own links: its HTML and XML pages, built from its id; no ELI, no PDF.
    victim = day.planted[0]
    browser.get(pages["published"].as_uri())
    article = browser.find_element(By.ID, victim.lower())
    links = {a.text: a.get_attribute("href") for a in article.find_elements(
        By.CSS_SELECTOR, ".links > a")}
    assert links == {"HTML": f"https://www.boe.es/diario_boe/txt.php?id={victim}",
                     "XML": f"https://www.boe.es/diario_boe/xml.php?id={victim}"}
    browser.execute_script("document.querySelectorAll('details').forEach("
                           "function (d) { d.open = true; });")
    incidencias = browser.find_element(By.ID, "incidencias").text
    assert "javascript[:]alert(3)" in incidencias and "descartado" in incidencias
    # The policy blocks nothing the page uses: its style sheet applies (by hash), and the
    # console has no violation report.
    for name in ("draft", "published"):
        browser.get(pages[name].as_uri())
        violations = [e["message"] for e in browser.get_log("browser")
                      if "Content Security Policy" in e["message"]]
        assert violations == [], violations
        colour = browser.execute_script(
            "return getComputedStyle(document.querySelector('h2')).color")
        assert colour == "rgb(138, 28, 28)", colour  # --accent from the page's <style>
        assert browser.find_element(By.ID, "selection").is_displayed()
        # printing shows the collapsed lists (CSS ::details-content; no script any more)
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        hidden = browser.execute_script(
            "return [...document.querySelectorAll('details.compact li')]"
            ".filter(e => e.getBoundingClientRect().height == 0).length")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        assert hidden == 0, f"{hidden} items of closed lists would not print"
    browser.get(pages["published"].as_uri())
    browser.execute_script("document.querySelectorAll('details').forEach("
                           "function (d) { d.open = true; });")
    for part, selector in (("header", "header.top"), ("item", f"#{victim.lower()}"),
                           ("incidencias", "#incidencias")):
        browser.find_element(By.CSS_SELECTOR, selector).screenshot(
            str(tmp_path / f"published-{part}.png"))
    for name in ("draft", "published", "mail-html", "published-md"):
        _screenshot(browser, pages[name], tmp_path / f"hostile-{name}.png")
        assert (tmp_path / f"hostile-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print("\nlinks clicked, documents requested:",
          {name: (c.links, len(c.navigations)) for name, c in report.items()})
