"""Issue 17, findings 3, 4 and 9 (links, partial days, times, feed), on a hostile replay of
2024-11-13 (tests/support/hostile_digest.py): every link of the digest — page, Markdown,
e-mail (both parts), feed — is an https URL of the BOE built from the item's id or validated;
what was refused is an incidencia of the item; the Markdown cannot be broken out of, even by a
GFM renderer that linkifies text; the page has a script-free content-security policy; a run
limited by sections or max_items says so everywhere; times are Madrid time with the offset;
feed links are absolute and entry ids stable. The browser side is
tests/integration/test_digest_links.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from pydantic import ValidationError

from boeflow.boe.document import extract_eli
from boeflow.boe.store import RawStore
from boeflow.core.settings import Settings
from boeflow.core.site import BOE_HOSTS, UnsafeUrl, check_boe_url, check_site_origin
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.digest.build import ReviewInput, apply_review, selection
from boeflow.digest.mail import digest_mails
from boeflow.digest.model import Digest, Item, ItemReview
from boeflow.digest.publish import Pointer, switch_version, write_digest, write_feed
from boeflow.digest.render import (
    instante,
    md_url,
    page_css,
    render_email_html,
    render_html,
    render_json,
    render_markdown,
    review_body,
)
from tests.conftest import DOCUMENTS
from tests.support.hostile_boe import (
    HOSTILE_DOCUMENT_PDF,
    HOSTILE_ELI_PREFIX,
    HOSTILE_ITEM_LINKS,
    MARKDOWN_BREAKOUT,
)
from tests.support.hostile_digest import NOV13, HostileDay, hostile_day

# What the recorded day itself links to, for the positive cases.
GENUINE = ["https://www.boe.es/boe/dias/2024/11/13/pdfs/BOE-A-2024-23543.pdf",
           "/boe/dias/2024/11/13/pdfs/BOE-A-2024-23543.pdf",
           "https://www.boe.es/eli/es/res/2024/11/12/(1)",
           "https://www.boe.es/diario_boe/txt.php?id=BOE-A-2024-23543",
           "HTTP://WWW.BOE.ES/boe/dias/2024/11/13/pdfs/BOE-A-2024-23620.pdf",
           "https://boe.es/buscar/doc.php?id=BOE-A-2024-23543"]
REFUSED = [value for _, value in HOSTILE_ITEM_LINKS] + [
    MARKDOWN_BREAKOUT, HOSTILE_DOCUMENT_PDF, HOSTILE_ELI_PREFIX + "es/res/2024/11/12/(1)",
    "javascript:alert(1)", "data:,x", "vbscript:msgbox(1)", "file:///etc/passwd",
    "https://www.boe.es:8443/x", "https://user@www.boe.es/x", "https://www.boe.es/x#frag",
    "https://www.boe.es/a\\b", "https://www.boe.es/x\ny", "https://www.boe.es/%zz",
    "https://www.boe.es/x'onclick='alert(1)", "https://www.boe.es/<script>",
    "https://www.boe.es/x`y", "//evil.example/x", "\\\\evil.example\\x"]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> HostileDay:
    return hostile_day(tmp_path_factory.mktemp("hostile-links"))


@pytest.fixture(scope="module")
def published(day: HostileDay) -> Digest:
    final = apply_review(day.draft, ReviewInput(
        decision="approved", reviewer="revisora",
        decided_at=datetime(2024, 11, 13, 23, 30, tzinfo=UTC)),
        lambda boe_id, language, summary: (True, []))
    final.version = 1
    return final


def is_boe_https(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.netloc in BOE_HOSTS and not parts.fragment


def hrefs(html: str) -> list[str]:
    soup = BeautifulSoup(html, "html.parser")
    return [str(a.get("href")) for a in soup.find_all(href=True)]


def assert_only_boe_links(html: str, where: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    for node in soup.find_all(True):
        handlers = [name for name in node.attrs if name.lower().startswith("on")]
        assert not handlers, f"{where}: <{node.name} {handlers}>"
        for name in ("src", "action", "formaction", "srcset", "background"):
            assert name not in node.attrs, f"{where}: <{node.name} {name}=…>"
    assert soup.find_all(["script", "img", "iframe", "object", "embed", "form"]) == [], where
    links = hrefs(html)
    assert links, where
    for href in links:
        assert href.startswith("#") or is_boe_https(href), f"{where}: {href!r}"


def gfm(markdown: str) -> str:
    """Markdown as a GitHub-like renderer shows it: raw HTML allowed, bare URLs linkified."""
    return str(MarkdownIt("gfm-like").render(markdown))


def test_only_https_urls_on_the_boe_hosts_are_accepted() -> None:
    for url in GENUINE:
        checked = check_boe_url(url)
        assert is_boe_https(checked), checked
    assert check_boe_url(GENUINE[4]) == ("https://www.boe.es/boe/dias/2024/11/13/pdfs/"
                                         "BOE-A-2024-23620.pdf")
    assert check_boe_url(GENUINE[2], path_prefix="/eli/") == GENUINE[2]
    for url in REFUSED:
        with pytest.raises(UnsafeUrl):
            check_boe_url(url)
    with pytest.raises(UnsafeUrl):
        check_boe_url("https://www.boe.es/boe/dias/x.pdf", path_prefix="/eli/")
    # the configured base of links is held to the same hosts
    assert check_site_origin("https://www.boe.es/") == "https://www.boe.es"
    for bad in ("http://www.boe.es", "javascript:alert(1)", "https://evil.example",
                "https://www.boe.es/x"):
        with pytest.raises(UnsafeUrl):
            check_site_origin(bad)
        with pytest.raises(ValidationError):
            Settings(digest_site_url=bad)
    with pytest.raises(ValidationError):
        Settings(digest_feed_url="javascript:alert(1)")


def test_a_javascript_rdf_about_is_not_taken_as_the_eli(day: HostileDay) -> None:
    victim = day.planted[0]  # its document is served with the hostile ELI and url_pdf
    record = day.records[victim]
    assert record["eli"] is None and record["url_pdf"] is None
    warnings = record["parse_warnings"]
    assert any(w.startswith("ELI descartado: 'javascript[:]alert(3)") for w in warnings)
    assert any(w.startswith("enlace PDF descartado: 'data[:]text/html") for w in warnings)
    # the genuine document of the day keeps its ELI
    assert day.records["BOE-A-2024-23620"]["eli"] == \
        "https://www.boe.es/eli/es/o/2024/11/12/int1265"
    root = parse_xml_bytes(
        b'<documento><metadata-eli><x xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' rdf:about="javascript:alert(1)//www.boe.es/eli/es/l/2024/1"/>'
        b'<y xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'rdf:about="https://www.boe.es/eli/es/l/2024/1/dof"/></metadata-eli></documento>')
    dropped: list[str] = []
    assert extract_eli(root, dropped) == "https://www.boe.es/eli/es/l/2024/1/dof"
    assert dropped == []  # a valid ELI was found: nothing to report


def test_every_url_of_the_digest_is_https_boe_and_each_refusal_an_incidencia(
        day: HostileDay, published: Digest) -> None:
    for digest in (day.draft, published):
        for item in digest.all_items():
            for url in (item.url_pdf, item.url_html, item.url_xml, item.eli,
                        *(link.url for link in item.links)):
                assert url is None or is_boe_https(url), (item.boe_id, url)
            assert item.url_html == f"https://www.boe.es/diario_boe/txt.php?id={item.boe_id}"
            assert item.url_xml == f"https://www.boe.es/diario_boe/xml.php?id={item.boe_id}"
    refused = {(n.boe_id, n.stage, n.reason) for n in day.draft.incidencias
               if "descartado" in n.reason}
    reasons = " | ".join(reason for _, _, reason in refused)
    # The other recorded items of the day get genuine links in other spellings (upper case,
    # http): upgraded and kept, not refused.
    genuine = {boe_id for boe_id in day.planted[1:] if (DOCUMENTS / f"{boe_id}.xml").exists()}
    assert "BOE-A-2024-23620" in genuine
    for victim in day.planted:
        if victim not in genuine:
            assert any(boe_id == victim for boe_id, _, _ in refused), victim
    for boe_id in genuine:
        assert not any(refused_id == boe_id for refused_id, _, _ in refused), boe_id
    assert "esquema 'javascript'" in reasons and "esquema 'data'" in reasons
    assert "no está en el sitio del BOE" in reasons
    stages = {stage for boe_id, stage, _ in refused if boe_id == day.planted[0]}
    assert stages == {"fetch", "parse"}
    item = next(i for i in day.draft.all_items() if i.boe_id == "BOE-A-2024-23620")
    assert item.url_pdf == "https://www.boe.es/boe/dias/2024/11/13/pdfs/BOE-A-2024-23620.pdf"
    shown = next(i for i in day.draft.all_items() if i.boe_id == day.planted[0])
    assert not shown.compact and shown.eli is None and shown.url_pdf is None
    # the inverse link from a non-BOE id is not shown, the genuine one is
    assert [link.target_id for link in shown.links] == ["BOE-A-2024-24097"]
    assert day.draft.header.incidencias == len(day.draft.incidencias)


def test_the_model_cannot_hold_an_unsafe_url(day: HostileDay) -> None:
    base = {"boe_id": "BOE-A-2024-1", "title_es": "t", "compact": True,
            "review": ItemReview(status="not_enriched")}
    for field in ("url_pdf", "url_html", "url_xml"):
        for url in ("javascript:alert(1)", MARKDOWN_BREAKOUT, "https://evil.example/x"):
            with pytest.raises(ValidationError):
                Item(**base, **{field: url})
    with pytest.raises(ValidationError):
        Item(**base, eli="https://www.boe.es/boe/dias/x.pdf")  # not an ELI
    # a tampered digest.json is refused when read back, not published
    data = json.loads(render_json(day.draft))
    data["sections"][0]["departments"][0]["compact"][0]["url_pdf"] = "javascript:alert(1)"
    with pytest.raises(ValidationError):
        Digest.model_validate(data)


def test_markdown_and_the_mail_text_cannot_be_broken_out_of(
        day: HostileDay, published: Digest) -> None:
    mails = digest_mails(published, ["lector@example.org"], [])
    texts = {"draft digest.md": render_markdown(day.draft),
             "published digest.md": render_markdown(published), "mail text": mails[0].text}
    for where, text in texts.items():
        html = gfm(text)
        assert_only_boe_links(html, where)
        assert "<img" not in html and "javascript:" not in html.lower()
        for target in re.findall(r"(?<!\\)\]\((<[^>]*>|[^)]*)\)", text):
            assert target.startswith("<https://www.boe.es/") or target.startswith("#"), target
    # a target with every dangerous character stays one link with one target
    rendered = gfm(f"[x]({md_url(MARKDOWN_BREAKOUT)})")
    assert len(hrefs(rendered)) == 1 and "<img" not in rendered
    eli = "https://www.boe.es/eli/es/res/2024/11/12/(1)"
    assert hrefs(gfm(f"[ELI]({md_url(eli)})")) == [eli]


def test_page_and_mail_have_a_script_free_content_security_policy(
        day: HostileDay, published: Digest) -> None:
    css_hash = base64.b64encode(hashlib.sha256(page_css().encode()).digest()).decode()
    for digest in (day.draft, published):
        html = render_html(digest)
        soup = BeautifulSoup(html, "html.parser")
        meta = soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
        assert meta is not None
        policy = str(meta["content"])
        assert "script-src 'none'" in policy and "default-src 'none'" in policy
        assert f"style-src 'sha256-{css_hash}'" in policy
        assert soup.find("style").string == page_css()  # type: ignore[union-attr]
        assert soup.find_all("script") == [] and not soup.find_all(style=True)
        assert soup.find("meta") is meta or str(soup.head).index("Content-Security") < \
            str(soup.head).index("<style")
        assert_only_boe_links(html, f"{digest.status} page")
    email = render_email_html(published)
    meta = BeautifulSoup(email, "html.parser").find(
        "meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert meta is not None and "script-src 'none'" in str(meta["content"])
    assert_only_boe_links(email, "mail html")


def publish_files(store: RawStore, digest: Digest) -> None:
    """The file half of a publication: the version's files, then the day's pointer."""
    paths = write_digest(store, digest)
    switch_version(store, digest.date, Pointer(version=digest.version or 1,
                                               draft_hash=digest.draft_hash or "",
                                               content_key="test", paths=paths))


def test_a_limited_run_is_labelled_partial_everywhere(tmp_path: Path) -> None:
    limited = hostile_day(tmp_path / "limited", hostile=False, max_items=12)
    label = "selección: secciones I y III; 12 de 219 elementos"
    draft = limited.draft
    assert draft.header.selection is not None
    assert draft.header.selection.label == label
    assert draft.header.items == 12 and draft.header.selection.listed == 219
    assert draft.header.selection.sections == ["I", "III"]
    final = apply_review(draft, ReviewInput(decision="approved", reviewer="r"),
                         lambda *_: (True, []))
    final.version = 1
    assert final.header.selection == draft.header.selection
    assert json.loads(render_json(final))["header"]["selection"]["label"] == label
    for text in (render_markdown(final), render_html(final), review_body(draft, "x"),
                 digest_mails(final, ["a@example.org"], [])[0].text):
        assert label in text and "parcial" in text
    assert "resumen parcial" in BeautifulSoup(render_html(final), "html.parser").title.string
    subject = digest_mails(final, ["a@example.org"], [])[0].subject
    assert subject == f"BOE del 13/11/2024: resumen parcial (12 elementos; {label})"
    publish_files(limited.store, final)
    write_feed(limited.store, "urn:boeflow:digests", "https://www.boe.es")
    feed = feedparser.parse(limited.store.read("digests/feed.xml"))
    assert "resumen parcial" in feed.entries[0].title and label in feed.entries[0].title
    # one section asked for, all its items: still partial, and said in the singular
    assert selection({"1": 3, "3": 20}, ["1"], 3) is not None
    assert selection({"1": 3, "3": 20}, ["1"], 3).label == \
        "selección: sección I; 3 de 23 elementos"  # type: ignore[union-attr]


def test_a_complete_day_is_not_labelled(tmp_path: Path) -> None:
    full = hostile_day(tmp_path / "full", hostile=False, sections=[])
    assert full.draft.header.items == 219 and full.draft.header.selection is None
    assert "Resumen parcial" not in render_markdown(full.draft)
    assert 'id="selection"' not in render_html(full.draft)
    assert "resumen diario (219 elementos)" in digest_mails(
        apply_review(full.draft, ReviewInput(decision="approved"), lambda *_: (True, [])),
        ["a@example.org"], [])[0].subject


def test_times_are_madrid_time_with_the_offset(day: HostileDay, published: Digest) -> None:
    # 23:30 UTC on the 13th is 00:30 on the 14th in Madrid (CET, UTC+01:00)
    assert instante(datetime(2024, 11, 13, 23, 30, tzinfo=UTC)) == \
        "14 de noviembre de 2024, 00:30 (UTC+01:00)"
    assert instante(datetime(2024, 7, 1, 22, 0, tzinfo=UTC)) == \
        "2 de julio de 2024, 00:00 (UTC+02:00)"
    assert instante(datetime(2024, 11, 13, 23, 30)) == instante(
        datetime(2024, 11, 13, 23, 30, tzinfo=UTC))  # naive values are UTC
    for text in (render_markdown(published), render_html(published),
                 digest_mails(published, ["a@example.org"], [])[0].text):
        assert "14 de noviembre de 2024, 00:30 (UTC+01:00)" in text
        assert "23:30" not in text and " UTC\n" not in text and "UTC." not in text


def test_feed_links_are_absolute_and_entry_ids_stable(day: HostileDay,
                                                      published: Digest) -> None:
    store = day.store
    publish_files(store, published)
    feed_url = "https://digests.example.org/boe/digests/feed.xml"
    write_feed(store, feed_url, "https://www.boe.es")
    first = feedparser.parse(store.read("digests/feed.xml"))
    entry = first.entries[0]
    page = "https://digests.example.org/boe/digests/2024/11/13/v1/digest.html"
    assert entry.link == page
    assert urljoin(feed_url, entry.link) == page  # absolute: no …/digests/digests/…
    assert [link.href for link in entry.links] == [page]
    assert entry.id == f"{feed_url}/2024/11/13/v1"
    assert entry.updated.endswith("+01:00")  # Madrid time
    write_feed(store, feed_url, "https://www.boe.es")
    assert feedparser.parse(store.read("digests/feed.xml")).entries[0].id == entry.id
    second = published.model_copy(deep=True)
    second.version = 2
    publish_files(store, second)
    write_feed(store, feed_url, "https://www.boe.es")
    assert feedparser.parse(store.read("digests/feed.xml")).entries[0].id == \
        f"{feed_url}/2024/11/13/v2"
    write_feed(store, "urn:boeflow:digests", "https://www.boe.es")
    urn = feedparser.parse(store.read("digests/feed.xml"))
    assert urn.entries[0].link == "https://www.boe.es/boe/dias/2024/11/13/"
    assert all(urlsplit(e.link).scheme == "https" for e in urn.entries)
    assert NOV13.isoformat() in published.date.isoformat()
