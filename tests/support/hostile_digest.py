"""A digest built from a hostile BOE day (issue 17, findings 3, 4 and 9): the 2024-11-13 sumario
served by the replay server with ``make_hostile(server, "hostile_links")``
(tests/support/hostile_boe.py) — javascript:/data:/off-host values in url_pdf/url_html/url_xml,
a Markdown breakout in an url_html, a recorded document whose ``rdf:about`` reads
``javascript:…//www.boe.es/eli/…`` — fetched by the real Fetcher (sections I and III, optionally
``max_items``), the stored item XML parsed by boeflow.parse and turned into its
``boe-documents`` record by the indexer's own ``document_source``, and the draft built by
``build_draft`` with the listed counts ``collect`` reads from the stored sumario."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer
from boeflow.boe.store import RawStore
from boeflow.core.settings import Settings
from boeflow.digest.build import DayInputs, build_draft
from boeflow.digest.model import Digest
from tests.support.hostile_boe import make_hostile

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "boe"
NOV13 = date(2024, 11, 13)
# A summary written by hand for BOE-A-2024-23543 (a fixture standing for an enrichment
# output, not model output), so the item is shown in full with its links block.
SUMMARY_23543 = {
    "resumen": "La Mutualidad General de Funcionarios Civiles del Estado garantiza la "
               "continuidad del abono del subsidio a los mutualistas afectados por la DANA.",
    "puntos_clave": ["Continuidad del abono del subsidio."],
}


@dataclass
class HostileDay:
    store: RawStore
    manifest: DayManifest
    records: dict[str, dict[str, Any]]
    listed: dict[str, int] | None
    planted: list[str]
    draft: Digest


def hostile_day(data_dir: Path, *, hostile: bool = True, sections: list[str] | None = None,
                max_items: int | None = None) -> HostileDay:
    from boeflow.boe.fetch import Fetcher, FetchOptions
    from boeflow.boe.http import BoeClient, ClientConfig
    from boeflow.boe.store import load_manifest
    from boeflow.digest.collect import listed_items
    from boeflow.index.writer import document_source
    from boeflow.jobs.common import raw_store
    from boeflow.parse import parse_file

    settings = Settings(data_dir=data_dir, samples_dir=SAMPLES)
    with BoeServer(SAMPLES) as server:
        planted = make_hostile(server, "hostile_links", NOV13) if hostile else []
        replay = settings.model_copy(update={"boe_base_url": server.url,
                                             "boe_rate_limit": 0.0, "boe_max_attempts": 1})
        store = raw_store(replay)
        with BoeClient(ClientConfig.from_settings(replay)) as client:
            Fetcher(client, store, FetchOptions.from_settings(
                replay, sections=sections if sections is not None else ["1", "3"],
                limit=max_items)).fetch_day(NOV13)
    manifest = load_manifest(store, NOV13)
    assert manifest is not None
    records: dict[str, dict[str, Any]] = {}
    for item in manifest.items:
        xml = item.files.get("xml")
        if xml is not None and xml.ok and xml.path:
            doc = parse_file(Path(store.path(xml.path)))
            records[doc.id] = document_source(doc, [], "test-pipeline", "test-hash", False)
    if "BOE-A-2024-23543" in records:
        records["BOE-A-2024-23543"].update(
            summary=SUMMARY_23543, review_status="auto_checked",
            # an inverse link whose source is no BOE id (a tampered index): not shown
            linked_from=[{"source_id": "javascript:alert(8)", "relation": "corrige",
                          "source_title": "x"},
                         {"source_id": "BOE-A-2024-24097", "relation": "corrige",
                          "source_title": "Corrección de errores"}])
    listed = listed_items(store, manifest)
    draft = build_draft(DayInputs(day=NOV13, manifest=manifest, records=records,
                                  listed=listed))
    return HostileDay(store, manifest, records, listed, planted, draft)
