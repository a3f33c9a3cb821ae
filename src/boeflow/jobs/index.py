"""The index step: the day's items planned into batches; each batch parsed, chunked,
embedded and upserted into Elasticsearch."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from boeflow.core.errors import one_line
from boeflow.core.sections import in_sections
from boeflow.core.settings import Settings
from boeflow.jobs.common import (
    TaskFailed,
    is_published,
    peak_rss_mib,
    raw_store,
    recorded,
    resolve_settings,
)


def index_day(day: str, settings: Settings | None = None,
              run_id: str | None = None, *, force: bool = False) -> dict[str, Any]:
    """parse → chunk → embed → index every fetched document of ``day``; one bad document
    is recorded (and listed in the digest's incidencias), never fails the day. ``force``
    re-indexes unchanged documents too (enrichment fields are kept)."""
    from boeflow.boe.store import fetched_day_files, load_manifest
    from boeflow.digest.collect import fetch_records
    from boeflow.index.client import get_client, names_for
    from boeflow.index.files import index_files
    from boeflow.state.db import state
    from boeflow.state.records import record_index

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    with recorded(settings, day, "index", run_id) as detail:
        if not is_published(settings, day):
            detail.update({"day": day, "documents": 0, "note": "no publication"})
            return dict(detail)
        with tempfile.TemporaryDirectory() as workdir:
            files = fetched_day_files(settings, when, when, Path(workdir))
            if not files:
                detail.update({"day": day, "documents": 0, "note": "nothing fetched"})
                return dict(detail)
            report = index_files(files, settings, force=force)
        result = {"day": day, **report.as_dict()}
        detail.update(result)
        manifest = load_manifest(raw_store(settings), when)
        ids = [i.id for i in manifest.items] if manifest else []
        client = get_client(settings)
        try:
            records = fetch_records(client, names_for(settings), ids)
        finally:
            client.close()
        with state(settings) as conn:
            record_index(conn, when, {i: r.get("content_hash") for i, r in records.items()},
                         dict(report.failed))
        if report.failed and len(report.failed) == report.documents:
            raise TaskFailed(f"{day}: every document failed: {report.failed}")
    return result


def record_indexed(day: str, settings: Settings, failed: Mapping[str, str]) -> None:
    """What the index task records, for a day indexed by ``boeflow index --date``:
    each document's content hash in Elasticsearch, or why it failed."""
    from boeflow.boe.store import load_manifest
    from boeflow.digest.collect import fetch_records
    from boeflow.index.client import get_client, names_for
    from boeflow.state.db import state
    from boeflow.state.records import record_index, record_task

    when = date.fromisoformat(day)
    manifest = load_manifest(raw_store(settings), when)
    ids = [i.id for i in manifest.items] if manifest else []
    with get_client(settings) as client:
        records = fetch_records(client, names_for(settings), ids)
    mine = {i: reason for i, reason in failed.items() if i in set(ids)}
    with state(settings) as conn:
        record_index(conn, when, {i: r.get("content_hash") for i, r in records.items()}, mine)
        record_task(conn, when, "index", "failed" if mine and not records else "success",
                    detail={"indexed": len(records), "failed": mine})


BATCH_LABEL_CHARS = 200  # Airflow keeps at most 250 characters of a rendered map index


def batch_label(ids: list[str]) -> str:
    """The BOE ids of a batch as the Airflow grid shows them (its map index name)."""
    shown: list[str] = []
    for boe_id in ids:
        if shown and len(", ".join([*shown, boe_id])) > BATCH_LABEL_CHARS:
            return f"{', '.join(shown)} … (+{len(ids) - len(shown)})"
        shown.append(boe_id)
    return ", ".join(shown)


def plan_batches(day: str, settings: Settings | None = None, *,
                 sections: list[str] | None = None, max_items: int | None = None,
                 batch_size: int | None = None) -> list[dict[str, Any]]:
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
    return [{"day": day, "batch": n, "ids": ids[start:start + size],
             "label": batch_label(ids[start:start + size])}
            for n, start in enumerate(range(0, len(ids), size))]


def batch_files(settings: Settings, when: date, ids: list[str],
                 workdir: Path) -> tuple[list[Path], dict[str, str]]:
    """The stored document file of each id, and the ids that have none."""
    from boeflow.boe.store import fetched_day_files

    files = fetched_day_files(settings, when, when, workdir, ids=set(ids))
    found = {f.stem for f in files}
    return files, {i: "no document file in the raw store" for i in ids if i not in found}


def index_batch(day: str, ids: list[str], settings: Settings | None = None,
                batch: int = 0, *, force: bool = False) -> dict[str, Any]:
    """parse → chunk → embed → index the documents ``ids`` of ``day``. A document that
    fails is recorded (digest incidencias) and does not fail the batch; when the batch
    cannot run at all (Elasticsearch down, no model), every id is recorded as failed with
    that line and the task fails, so that Airflow retries it."""
    from boeflow.digest.collect import fetch_records
    from boeflow.index.client import get_client, names_for
    from boeflow.index.files import index_files
    from boeflow.state.db import state
    from boeflow.state.records import record_index

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            files, missing = batch_files(settings, when, ids, Path(workdir))
            report = index_files(files, settings, force=force) if files else None
        failed = {**missing, **(dict(report.failed) if report else {})}
        with get_client(settings) as client:
            records = fetch_records(client, names_for(settings), ids)
    except Exception as exc:
        message = one_line(exc)
        with state(settings) as conn:
            record_index(conn, when, {}, {i: message for i in ids})
        raise TaskFailed(f"index {day} batch {batch} ({batch_label(ids)}): {message}") from exc
    indexed = {i: records[i].get("content_hash") for i in ids if i in records and i not in failed}
    with state(settings) as conn:
        record_index(conn, when, indexed, failed)
    return {"day": day, "batch": batch, "ids": ids, "indexed": sorted(indexed),
            "failed": failed, "pid": os.getpid(), "peak_rss_mib": peak_rss_mib(),
            **({k: v for k, v in report.as_dict().items()
                                  if k not in ("failed",)} if report else {})}
