"""The index step: the day's items planned into batches; each batch parsed, chunked,
embedded and upserted into Elasticsearch."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from boeflow.core.errors import one_line
from boeflow.core.sections import in_sections
from boeflow.core.settings import Settings
from boeflow.jobs.common import (
    TaskFailed,
    is_published,
    owns_resources,
    peak_rss_mib,
    raw_store,
    recorded,
    resolve_settings,
)
from boeflow.jobs.results import Batch, IndexedBatch, IndexedDay


@owns_resources
def index_day(day: str, settings: Settings | None = None,
              run_id: str | None = None, *, force: bool = False,
              on_document: Callable[[str], None] | None = None) -> IndexedDay:
    """parse → chunk → embed → index every fetched document of ``day``, by the same batches
    and ``index_batch`` the DAG's mapped tasks run (``boeflow index --date``, the demo); one
    bad document is recorded (and listed in the digest's incidencias), never fails the day,
    nor does a batch that cannot run (its documents are recorded as failed). ``force``
    re-indexes unchanged documents too (enrichment fields are kept)."""
    from boeflow.index.report import IndexReport

    settings = resolve_settings(settings)
    with recorded(settings, day, "index", run_id) as detail:
        batches = plan_batches(day, settings) if is_published(settings, day) else None
        if not batches:
            result = IndexedDay(day=day, documents=0, note="no publication" if batches is None
                                else "nothing fetched")
            detail.update(result.to_json())
            return result
        total = IndexReport()
        for planned in batches:
            try:
                total.add(index_batch(day, planned.ids, settings, planned.batch,
                                      force=force, on_document=on_document))
            except TaskFailed as exc:
                total.failed.update({i: str(exc) for i in planned.ids})
        result = IndexedDay(day=day, **total.as_dict(), batches=len(batches))
        detail.update(result.to_json())
        if total.failed and len(total.failed) >= sum(len(b.ids) for b in batches):
            raise TaskFailed(f"{day}: every document failed: {total.failed}")
    return result


BATCH_LABEL_CHARS = 200  # Airflow keeps at most 250 characters of a rendered map index


def batch_label(ids: list[str]) -> str:
    """The BOE ids of a batch as the Airflow grid shows them (its map index name)."""
    shown: list[str] = []
    for boe_id in ids:
        if shown and len(", ".join([*shown, boe_id])) > BATCH_LABEL_CHARS:
            return f"{', '.join(shown)} … (+{len(ids) - len(shown)})"
        shown.append(boe_id)
    return ", ".join(shown)


@owns_resources
def plan_batches(day: str, settings: Settings | None = None, *,
                 sections: list[str] | None = None, max_items: int | None = None,
                 batch_size: int | None = None) -> list[Batch]:
    """The day's fetched items of ``sections`` (at most ``max_items``, in the sumario's
    order) in batches of ``batch_size`` (``BOEFLOW_AIRFLOW_BATCH_SIZE``): one mapped task per
    batch indexes it, another enriches it. Items that could not be fetched are not planned
    (the digest lists them as incidencias); no publication: no batches."""
    from boeflow.boe.store import load_manifest

    settings = resolve_settings(settings)
    manifest = load_manifest(raw_store(settings), date.fromisoformat(day))
    if manifest is None or manifest.status != "published":
        return []
    selected = [item for item in manifest.items if in_sections(item.section, sections)]
    if max_items is not None:
        selected = selected[:max_items]
    ids = [item.id for item in selected if any(f.ok for f in item.files.values())]
    size = batch_size or settings.airflow_batch_size
    return [Batch(day=day, batch=n, ids=ids[start:start + size],
                  label=batch_label(ids[start:start + size]))
            for n, start in enumerate(range(0, len(ids), size))]


def batch_files(settings: Settings, when: date, ids: list[str],
                 workdir: Path) -> tuple[list[Path], dict[str, str]]:
    """The stored document file of each id, and the ids that have none."""
    from boeflow.boe.store import fetched_day_files

    files = fetched_day_files(settings, when, when, workdir, ids=set(ids))
    found = {f.stem for f in files}
    return files, {i: "no document file in the raw store" for i in ids if i not in found}


@owns_resources
def index_batch(day: str, ids: list[str], settings: Settings | None = None,
                batch: int = 0, *, force: bool = False,
                on_document: Callable[[str], None] | None = None) -> IndexedBatch:
    """parse → chunk → embed → index the documents ``ids`` of ``day``. A document that
    fails is recorded (digest incidencias) and does not fail the batch; when the batch
    cannot run at all (Elasticsearch down, no model), every id is recorded as failed with
    that line and the task fails, so that Airflow retries it."""
    from boeflow.digest.collect import fetch_records
    from boeflow.index.client import es_session, names_for
    from boeflow.index.files import index_files
    from boeflow.state.db import state
    from boeflow.state.records import record_index

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            files, missing = batch_files(settings, when, ids, Path(workdir))
            report = index_files(files, settings, force=force,
                                 on_document=on_document) if files else None
        failed = {**missing, **(dict(report.failed) if report else {})}
        with es_session(settings) as client:
            records = fetch_records(client, names_for(settings), ids)
    except Exception as exc:
        message = one_line(exc)
        with state(settings) as conn:
            record_index(conn, when, {}, {i: message for i in ids})
        raise TaskFailed(f"index {day} batch {batch} ({batch_label(ids)}): {message}") from exc
    indexed = {i: records[i].get("content_hash") for i in ids if i in records and i not in failed}
    with state(settings) as conn:
        record_index(conn, when, indexed, failed)
    figures = report.as_dict() if report else {}
    return IndexedBatch(**{**figures, "failed": failed}, day=day, batch=batch, ids=ids,
                        indexed=sorted(indexed), pid=os.getpid(), peak_rss_mib=peak_rss_mib())
