"""Valencian titles for every item of a day's sumario, and its department and section names.

Most of a BOE day is never summarised (appointments, announcements: the compact lists), so
its items would have no Valencian at all. Every title, department and section name of the
day's manifest is translated by Apertium, all of them in one Apertium process, and kept in
the enrich store (``enrich/titles/<day>.json``, Spanish text → Valencian text, with the
Apertium mode and data revision that made it): a rerun of the day translates nothing, and a
new Apertium version retranslates. The digest reads the file (``load_day_titles``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from pathlib import Path
from typing import Any

from boeflow.boe.manifest import DayManifest
from boeflow.core.settings import Settings
from boeflow.enrich.cache import EnrichStore

log = logging.getLogger(__name__)


def titles_path(settings: Settings, day: date) -> Path:
    return EnrichStore(settings).root / "titles" / f"{day.isoformat()}.json"


def day_texts(manifest: DayManifest) -> list[str]:
    """The distinct titles, department and section names of the day, in sumario order."""
    seen: dict[str, None] = {}
    for item in manifest.items:
        for text in (item.section_name, item.department, item.title):
            if text and text.strip():
                seen.setdefault(text, None)
    return list(seen)


def load_day_titles(settings: Settings, day: date) -> dict[str, str]:
    """Spanish → Valencian of the day's titles and names ({} when not translated yet)."""
    path = titles_path(settings, day)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    texts = data.get("texts") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in (texts or {}).items() if v}


def translate_day_titles(settings: Settings, day: date, manifest: DayManifest | None,
                         *, force: bool = False) -> dict[str, Any]:
    """Translate what the day's file lacks (one Apertium process); returns ``titles``
    (distinct texts of the day), ``translated`` (now) and ``seconds``."""
    from boeflow.enrich.apertium import PROTECTION_VERSION
    from boeflow.enrich.translate import apertium_for

    if manifest is None or not manifest.items:
        return {"titles": 0, "translated": 0, "seconds": 0.0}
    engine = apertium_for(settings, "es", "va")
    texts = day_texts(manifest)
    path = titles_path(settings, day)
    stored: dict[str, Any] = {}
    if path.is_file() and not force:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
    fingerprint = {"model": f"apertium:{engine.mode}", "revision": engine.revision,
                   "version": PROTECTION_VERSION}
    known: dict[str, str] = dict(stored.get("texts") or {}) \
        if all(stored.get(k) == v for k, v in fingerprint.items()) else {}
    missing = [t for t in texts if t not in known]
    started = time.perf_counter()
    if missing:
        known.update(zip(missing, engine.translate(missing), strict=True))
        EnrichStore(settings).save_json(f"titles/{day.isoformat()}.json",
                                        {**fingerprint, "day": day.isoformat(), "texts": known})
    seconds = round(time.perf_counter() - started, 3)
    if missing:
        log.info("translated %d titles and names of %s in %.2fs", len(missing), day, seconds)
    return {"titles": len(texts), "translated": len(missing), "seconds": seconds}


def translate_titles_of_day(settings: Settings, day: date, *,
                            force: bool = False) -> dict[str, Any]:
    """``translate_day_titles`` for the day's fetched manifest (raw store)."""
    from boeflow.boe.store import RawStore, load_manifest, store_url

    if not settings.translate_titles:
        return {"titles": 0, "translated": 0, "seconds": 0.0, "note": "disabled"}
    return translate_day_titles(settings, day, load_manifest(RawStore(store_url(settings)), day),
                                force=force)
