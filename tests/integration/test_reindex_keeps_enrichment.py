"""One owner per field of a ``boe-documents`` record: the indexer upserts only its own
fields, so a re-index (``--force``, or a new pipeline key after a chunking change) keeps the
summary, translation and review that enrich wrote; a changed text marks the enrichment stale
until the next enrich regenerates it. Real Elasticsearch, smoke models, the recorded BOE."""

from __future__ import annotations

from typing import Any

import pytest

from boeflow import jobs
from boeflow.core.settings import Settings
from boeflow.digest.build import STALE_REASON
from boeflow.index.client import get_client
from boeflow.index.mapping import IndexNames
from tests.support.digest_fixtures import replayed_settings

pytestmark = pytest.mark.integration
PREFIX = "it-reindex-"
DAY = "2024-11-13"
DOC = "BOE-A-2024-23543"
ENRICHMENT_FIELDS = ("summary", "summary_text", "summary_va", "title_va", "summary_va_review",
                     "review_status", "needs_attention", "review_reasons", "enrichment")


settings = replayed_settings(PREFIX)


def _record(settings: Settings) -> dict[str, Any]:
    with get_client(settings) as client:
        return dict(client.get(index=IndexNames(PREFIX).documents, id=DOC)["_source"])


def test_reindex_keeps_enrichment_and_marks_a_changed_text_stale(settings: Settings) -> None:
    jobs.fetch_day(DAY, settings, ["1"])
    first = jobs.index_batch(DAY, [DOC], settings)
    assert first.indexed == [DOC]
    enriched = jobs.enrich_batch(DAY, [DOC], settings, languages=["es", "va"])
    assert enriched.enriched == [DOC]
    before = _record(settings)
    kept = {name: before[name] for name in ENRICHMENT_FIELDS}
    assert kept["summary"] and kept["review_status"] and before["enrichment_stale"] is False

    # --force on an unchanged document: re-indexed (every chunk re-sent), enrichment intact.
    forced = jobs.index_batch(DAY, [DOC], settings, force=True)
    assert forced.skipped_unchanged == 0 and forced.chunks_unchanged == 0
    assert forced.enrichment_stale == 0
    after = _record(settings)
    assert {name: after[name] for name in ENRICHMENT_FIELDS} == kept
    assert after["enrichment_stale"] is False

    # A chunking change (another pipeline key: new chunk ids, same text): intact, not stale.
    rechunked_settings = settings.model_copy(update={"embed_max_seq_length": 256})
    rechunked = jobs.index_batch(DAY, [DOC], rechunked_settings)
    assert rechunked.skipped_unchanged == 0 and rechunked.deleted_stale > 0
    after = _record(settings)
    assert after["n_chunks"] != before["n_chunks"]
    assert {name: after[name] for name in ENRICHMENT_FIELDS} == kept
    assert after["enrichment_stale"] is False

    # A changed text: the old enrichment is kept but marked stale (shown as needing attention
    # in the digest), and the next enrich regenerates it and clears the mark.
    item = settings.data_dir / "raw" / "boe" / "2024" / "11" / "13" / "items" / f"{DOC}.xml"
    xml = item.read_text(encoding="utf-8")
    head, tail = xml.rsplit("</texto>", 1)  # the body's end (references have <texto> too)
    changed = (head + "<p class=\"parrafo\">Párrafo añadido en una corrección posterior del "
               "texto.</p></texto>" + tail)
    assert changed != xml
    item.write_text(changed, encoding="utf-8")
    edited = jobs.index_batch(DAY, [DOC], rechunked_settings)
    assert edited.indexed == [DOC] and edited.enrichment_stale == 1, edited
    stale = _record(settings)
    assert stale["enrichment_stale"] is True and stale["summary"] == kept["summary"]
    assert "Párrafo añadido" in stale["text"]
    from boeflow.digest.build import _review

    review = _review(stale, has_summary=True)
    assert review.status == "needs_attention" and review.reasons[0] == STALE_REASON

    regenerated = jobs.enrich_batch(DAY, [DOC], rechunked_settings, languages=["es", "va"])
    assert regenerated.enriched == [DOC] and regenerated.generated == [DOC]
    fresh = _record(settings)
    assert fresh["enrichment_stale"] is False and fresh["summary"]
