"""One recorded day through fetch and the digest build, checked against the sumario itself.

``sweep_day`` fetches a day from the replay server (the sumario and the recorded item XMLs
are served, every other item answers 404), builds the digest draft from the manifest,
renders its HTML, and checks, against the sumario XML read independently of
``boeflow.boe.sumario`` (plain lxml), that every item is listed exactly once, in BOE order,
with its title, department and epígrafe intact, and that an item without a summary is
compact or under incidencias with its reason. Any failure raises AssertionError naming the
day. The peak RSS (VmHWM, reset before the day) and the wall time are returned.

``sweep_day_in_this_process`` is the entry point for a fresh process (the sweep's own
worker): there the peak RSS is the day's fetch and digest on top of a bare interpreter, not
whatever the test session loaded before (models, Airflow).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from lxml import etree, html

from boeflow.boe.fetch import Fetcher, FetchOptions
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.store import RawStore, load_manifest
from boeflow.digest.build import DayInputs, build_draft
from boeflow.digest.model import SECTION_ORDER
from boeflow.digest.render import render_html


@dataclass(frozen=True)
class Listed:
    """An item as the sumario XML lists it."""

    id: str
    title: str
    section: str
    department: str
    epigrafe: str | None


@dataclass(frozen=True)
class DayFigures:
    day: date
    items: int
    fetched: int
    incidencias: int
    sections: list[str]
    seconds: float
    peak_rss_mib: float

    def as_dict(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "items": self.items, "fetched": self.fetched,
                "incidencias": self.incidencias, "sections": self.sections,
                "seconds": round(self.seconds, 3), "peak_rss_mib": round(self.peak_rss_mib, 1)}


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def listed_items(data: bytes) -> list[Listed]:
    """The items of a sumario (API XML or legacy XML) in document order, read with plain
    lxml (no entities, no network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    legacy = root.tag == "sumario"
    out: list[Listed] = []
    for seccion in root.iter("seccion"):
        code = seccion.get("num" if legacy else "codigo") or ""
        for dept in seccion.iterfind("departamento"):
            for item in dept.iter("item"):
                parent = item.getparent()
                epigrafe = parent.get("nombre") if parent is not None and \
                    parent.tag == "epigrafe" else None
                boe_id = item.get("id") if legacy else item.findtext("identificador")
                out.append(Listed(_norm(boe_id), _norm(item.findtext("titulo")), code,
                                  dept.get("nombre") or "", epigrafe))
    return out


def peak_rss_reset() -> None:
    """Reset the process's RSS high-water mark (Linux: write 5 to /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match, "no VmHWM in /proc/self/status"
    return int(match.group(1)) / 1024


def sweep_day_in_this_process(config: ClientConfig, root: Path, day: date, store_dir: Path, *,
                              sumario_format: Literal["xml", "json"] = "xml") -> DayFigures:
    """``sweep_day`` with a client of its own (picklable arguments, for a worker process)."""
    with BoeClient(config) as client:
        return sweep_day(client, root, day, store_dir, sumario_format=sumario_format)


def sweep_day(client: BoeClient, root: Path, day: date, store_dir: Path, *,
              sumario_format: Literal["xml", "json"] = "xml") -> DayFigures:
    where = f"sumario of {day:%Y-%m-%d}{' (JSON)' if sumario_format == 'json' else ''}"
    sumario_file = root / "sumario" / f"BOE-S-{day:%Y%m%d}.xml"
    expected = listed_items(sumario_file.read_bytes())
    assert expected, f"{where}: the recorded sumario lists no item"
    recorded = {p.stem for p in (root / "documents").glob("*.xml")}
    peak_rss_reset()
    started = time.perf_counter()
    store = RawStore(store_dir)
    options = FetchOptions(formats=["xml"], sumario_format=sumario_format)
    summary = Fetcher(client, store, options).fetch_day(day)
    assert summary.status == "published", \
        f"{where}: fetch ended {summary.status}: {summary.error}"
    manifest = load_manifest(store, day)
    assert manifest is not None, f"{where}: no manifest written"
    digest = build_draft(DayInputs(day=day, manifest=manifest))
    page = render_html(digest)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib()

    first: dict[str, Listed] = {}
    for listed in expected:
        first.setdefault(listed.id, listed)  # a repeated id: the first listing wins
    unique = list(first.values())
    unique_ids = [item.id for item in unique]
    assert [row.id for row in manifest.items] == unique_ids, \
        f"{where}: the manifest does not list the sumario's items in its order"
    # Every item exactly once, sections in BOE order.
    items = digest.all_items()
    counts = Counter(item.boe_id for item in items)
    twice = [boe_id for boe_id, n in counts.items() if n > 1]
    assert not twice, f"{where}: listed more than once in the digest: {twice[:5]}"
    missing = [i for i in unique_ids if i not in counts]
    assert not missing, f"{where}: missing from the digest: {missing[:5]}"
    assert len(items) == len(unique_ids) == digest.header.items, f"{where}: item count"
    rank = {code: n for n, (code, _) in enumerate(SECTION_ORDER)}
    in_sumario = list(dict.fromkeys(item.section for item in unique))
    shown = [section.code for section in digest.sections]
    assert shown == in_sumario, f"{where}: sections {shown}, the sumario has {in_sumario}"
    assert shown == sorted(shown, key=lambda c: rank.get(c, len(rank))), \
        f"{where}: sections not in BOE order: {shown}"
    by_id = {item.id: item for item in unique}
    order = [item.boe_id for item in items]
    assert order == sorted(unique_ids, key=lambda i: rank.get(by_id[i].section, len(rank))), \
        f"{where}: items not in the sumario's order within their sections"
    # Titles, departments and epígrafes intact.
    incidencias = {n.boe_id: n for n in digest.incidencias}
    for section in digest.sections:
        for dept in section.departments:
            for item in (*dept.items, *dept.compact):
                listed = by_id[item.boe_id]
                assert item.title_es == listed.title, f"{where}: {item.boe_id} title changed"
                assert dept.name == listed.department, \
                    f"{where}: {item.boe_id} under {dept.name!r}, not {listed.department!r}"
                assert section.code == listed.section, f"{where}: {item.boe_id} section"
                assert item.epigrafe == listed.epigrafe, f"{where}: {item.boe_id} epígrafe"
                if item.summary_es is None:
                    assert item.compact or item.boe_id in incidencias, \
                        f"{where}: {item.boe_id} neither summarised, compact nor an incidencia"
                # Not recorded: a 404 incidencia; recorded: fetched (not yet indexed here).
                reason = incidencias[item.boe_id].reason if item.boe_id in incidencias else ""
                if item.boe_id in recorded:
                    assert incidencias[item.boe_id].stage == "index", \
                        f"{where}: recorded {item.boe_id} not fetched: {reason}"
                else:
                    assert "404" in reason, f"{where}: {item.boe_id} incidencia: {reason!r}"
    # The page shows each item once, with its title.
    tree = html.fromstring(page)
    for boe_id in unique_ids:
        nodes = tree.xpath("//*[@id=$id]", id=boe_id.lower())
        assert len(nodes) == 1, f"{where}: {boe_id} appears {len(nodes)} times in the HTML"
        assert _norm(by_id[boe_id].title) in _norm(nodes[0].text_content()), \
            f"{where}: {boe_id}'s title is not on the page"
    fetched = sum(1 for row in manifest.items if any(f.ok for f in row.files.values()))
    return DayFigures(day=day, items=len(items), fetched=fetched,
                      incidencias=len(digest.incidencias), sections=shown, seconds=seconds,
                      peak_rss_mib=peak)
