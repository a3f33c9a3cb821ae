"""Where digests go: the raw store (atomic writes), ``boe-digests`` in Elasticsearch and the
Atom feed ``digests/feed.xml``.

Layout in the raw store::

    digests/YYYY/MM/DD/draft/digest.{md,html,json}   the draft shown to the reviewer
    digests/YYYY/MM/DD/vN/digest.{md,html,json}      published version N (never rewritten
                                                     once current)
    digests/YYYY/MM/DD/current.json                  the day's current version: a pointer
                                                     replaced in one atomic rename
    digests/YYYY/MM/DD/plazos.ics                    the current version's entries into force
                                                     and deadlines (iCalendar)
    digests/plazos.ics                               rolling deadlines calendar (last year)
    digests/feed.xml                                 Atom feed, one entry per published day

A version's three files are written (JSON last) before the pointer names it, so a reader
going through the pointer sees either the previous version or the new one, complete, however
the publishing process dies. Days published before the pointer existed keep their
``digests/YYYY/MM/DD/digest.*`` files, read when there is no pointer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from elasticsearch import Elasticsearch, helpers
from pydantic import BaseModel

from boeflow.boe.store import RawStore
from boeflow.core.site import check_site_origin, day_url
from boeflow.digest.model import Digest
from boeflow.digest.render import FORMATS, render
from boeflow.index.mapping import IndexNames, digests_mapping, index_name, templates

FEED_PATH = "digests/feed.xml"
FEED_ENTRIES = 60


def digest_prefix(day: date, draft: bool = False) -> str:
    return f"digests/{day:%Y/%m/%d}" + ("/draft" if draft else "")


def digest_paths(day: date, draft: bool = False) -> dict[str, str]:
    return {fmt: f"{digest_prefix(day, draft)}/digest.{fmt}" for fmt in FORMATS}


def version_paths(day: date, version: int) -> dict[str, str]:
    return {fmt: f"{digest_prefix(day)}/v{version}/digest.{fmt}" for fmt in FORMATS}


def pointer_path(day: date) -> str:
    return f"{digest_prefix(day)}/current.json"


class Pointer(BaseModel):
    """``current.json``: which version of the day readers get."""

    version: int
    draft_hash: str
    content_key: str
    paths: dict[str, str]


def _write_formats(store: RawStore, digest: Digest, paths: dict[str, str]) -> None:
    for fmt in sorted(paths, key=lambda f: f == "json"):  # JSON last: it completes a version
        store.write_atomic(paths[fmt], render(digest, fmt).encode("utf-8"))  # type: ignore[arg-type]


def write_digest(store: RawStore, digest: Digest, draft: bool = False) -> dict[str, str]:
    """Render and write the three formats (each atomically); return format → store path.
    A published digest goes to its version directory (``digest.version``); it becomes what
    readers get only when ``switch_version`` names it."""
    if draft:
        paths = digest_paths(digest.date, True)
    elif digest.version is None:
        raise ValueError(f"the digest of {digest.date} has no version to publish")
    else:
        paths = version_paths(digest.date, digest.version)
    _write_formats(store, digest, paths)
    return paths


def remove_stale_temps(store: RawStore, day: date, version: int) -> int:
    """Temporary files a killed publisher of ``day`` left in ``vN/`` and beside the pointer
    (``current.json``, the day's ``plazos.ics``); the caller holds the day's publication
    lock: nobody else writes there (the draft, written by build_digest, is left alone)."""
    prefix = digest_prefix(day)
    return (store.remove_stale_temps(f"{prefix}/v{version}")
            + store.remove_stale_temps(prefix, recursive=False))


def read_pointer(store: RawStore, day: date) -> Pointer | None:
    path = pointer_path(day)
    if not store.exists(path):
        return None
    return Pointer.model_validate_json(store.read(path))


def switch_version(store: RawStore, day: date, pointer: Pointer) -> None:
    """Make ``pointer.version`` the day's current version: one atomic rename."""
    store.write_atomic(pointer_path(day), pointer.model_dump_json(indent=1).encode("utf-8"))


def read_version(store: RawStore, day: date, version: int) -> Digest | None:
    path = version_paths(day, version)["json"]
    if not store.exists(path):
        return None
    return Digest.model_validate_json(store.read(path))


def read_digest(store: RawStore, day: date, draft: bool = False) -> Digest | None:
    """The day's draft, or its current published version (through the pointer)."""
    if not draft:
        pointer = read_pointer(store, day)
        if pointer is not None:
            return read_version(store, day, pointer.version)
    path = digest_paths(day, draft)["json"]
    if not store.exists(path):
        return None
    return Digest.model_validate_json(store.read(path))


def current_paths(store: RawStore, day: date) -> dict[str, str]:
    """Format → store path of what readers get for ``day`` (empty when unpublished)."""
    pointer = read_pointer(store, day)
    if pointer is not None:
        return dict(pointer.paths)
    legacy = digest_paths(day)
    return legacy if store.exists(legacy["json"]) else {}


# --- Elasticsearch ---------------------------------------------------------------------------

def ensure_digests_index(client: Elasticsearch, names: IndexNames) -> None:
    """The ``boe-digests`` template, index and alias; new fields are added to an index
    created by an older boeflow (mappings only grow)."""
    alias = names.digests
    body = templates(1, names)[f"{alias}-template"]
    client.indices.put_index_template(name=f"{alias}-template", **body)
    concrete = index_name(alias)
    if not client.indices.exists(index=concrete):
        client.indices.create(index=concrete)
    if not client.indices.exists_alias(name=alias, index=concrete):
        client.indices.put_alias(index=concrete, name=alias)
    client.indices.put_mapping(index=concrete, properties=digests_mapping()["properties"])


def digest_documents(digest: Digest, paths: dict[str, str]) -> list[dict[str, Any]]:
    day = digest.date.isoformat()
    decision = digest.decision
    now = datetime.now(UTC).isoformat(timespec="seconds")
    docs: list[dict[str, Any]] = [{
        "_id": day, "digest_id": day, "kind": "digest", "date": day, "language": "es",
        "status": digest.status, "version": digest.version,
        "title": f"BOE {day}: {digest.header.items} elementos" + (
            f" (resumen parcial, {digest.header.selection.label})"
            if digest.header.selection else ""),
        "body": " ".join(i.title_es for i in digest.all_items())[:30000],
        "items": [i.boe_id for i in digest.all_items()],
        "decision": decision.decision if decision else None,
        "approved_by": decision.reviewer if decision else None,
        "approved_at": decision.decided_at.isoformat() if decision and decision.decided_at
        else None,
        "note": decision.note if decision else None,
        "published_at": now, "created_at": digest.generated_at.isoformat(), "paths": paths,
        "n_items": digest.header.items, "n_summarised": digest.header.summarised,
        "n_needs_attention": digest.header.needs_attention,
        "n_incidencias": digest.header.incidencias, "n_excluded": digest.header.excluded,
        "excluded": [e.boe_id for e in digest.excluded], "smoke": digest.smoke}]
    for section in digest.sections:
        for dept in section.departments:
            for item in (*dept.items, *dept.compact):
                edits = item.review.edits
                docs.append({
                    "_id": f"{day}:{item.boe_id}", "digest_id": day, "kind": "item",
                    "date": day, "status": digest.status, "version": digest.version,
                    "boe_id": item.boe_id, "title": item.title_es, "title_va": item.title_va,
                    "section": section.code, "department": dept.name, "rango": item.rango,
                    "summary_text": item.summary_es.resumen if item.summary_es else None,
                    "summary_va": item.summary_va.resumen if item.summary_va else None,
                    "review_status": item.review.status,
                    "review_reasons": item.review.reasons[:50],
                    "edited_by": edits[-1].by if edits else None,
                    "reviewer_note": item.review.note, "url": item.url or None,
                    "smoke": item.smoke, "published_at": now})
    return docs


def index_digest(client: Elasticsearch, names: IndexNames, digest: Digest,
                 paths: dict[str, str]) -> int:
    """Upsert the day's record and its items; remove item records of the day that the new
    version no longer holds (e.g. excluded on a re-review). Returns records written."""
    ensure_digests_index(client, names)
    docs = digest_documents(digest, paths)
    keep = {d["_id"] for d in docs}
    existing = client.search(index=names.digests, size=10000, source=False,
                             query={"term": {"digest_id": digest.date.isoformat()}})
    stale = [h["_id"] for h in existing["hits"]["hits"] if h["_id"] not in keep]
    actions: list[dict[str, Any]] = [
        {"_op_type": "index", "_index": names.digests, "_id": d["_id"],
         "_source": {k: v for k, v in d.items() if k != "_id"}} for d in docs]
    actions += [{"_op_type": "delete", "_index": names.digests, "_id": i} for i in stale]
    # A record already gone is fine: a run killed mid-publication may have sent these very
    # deletes, still being applied when its rerun searched.
    helpers.bulk(client, actions, refresh="wait_for", ignore_status=(404,))
    return len(docs)


# --- Atom feed -------------------------------------------------------------------------------

def published_days(store: RawStore) -> list[date]:
    days: set[date] = set()
    for path in store.list_files("digests"):
        parts = path.split("/")
        if len(parts) == 5 and parts[4] in ("current.json", "digest.json"):
            days.add(date(int(parts[1]), int(parts[2]), int(parts[3])))
    return sorted(days)


def feed_entry_link(feed_url: str, site_url: str, day: date,
                    page: str | None = None) -> str:
    """The absolute link of a day's feed entry: the published page next to the feed
    (``page``, its store path ``digests/YYYY/MM/DD/vN/digest.html``, resolved against the
    feed's directory) when the feed has an https URL, else the BOE's own page of that day.
    Never relative: a reader resolves a relative link against the feed's URL, and
    ``digests/…`` from ``…/digests/feed.xml`` is ``…/digests/digests/…``."""
    if urlsplit(feed_url).scheme.lower() == "https":
        relative = (page or f"digests/{day:%Y/%m/%d}/digest.html").removeprefix("digests/")
        return urljoin(feed_url, relative)
    return day_url(day, site_url)


def feed_entry_id(feed_url: str, day: date, version: int) -> str:
    """Stable per day and version: rebuilding the feed never changes an entry's id."""
    return f"{feed_url.rstrip('/')}/{day:%Y/%m/%d}/v{version}"


def write_feed(store: RawStore, feed_url: str, site_url: str) -> int:
    """Rebuild ``digests/feed.xml`` from the published digests (newest first, bounded);
    return the number of entries. Links are absolute, times in Madrid time. Callers
    serialise feed writers (``boeflow.jobs`` holds a PostgreSQL lock around it)."""
    from feedgen.feed import FeedGenerator

    from boeflow.digest.render import madrid

    feed = FeedGenerator()
    feed.id(feed_url)
    feed.title("boeflow — resumen diario del BOE")
    feed.subtitle("Resúmenes diarios revisados del Boletín Oficial del Estado")
    https_feed = urlsplit(feed_url).scheme.lower() == "https"
    if https_feed:
        feed.link(href=feed_url, rel="self", type="application/atom+xml")
    feed.link(href=check_site_origin(site_url) + "/", rel="alternate")
    feed.language("es")
    feed.author({"name": "boeflow"})
    feed.rights("Basado en datos de la Agencia Estatal Boletín Oficial del Estado.")
    # Left by a killed writer of the feed or the rolling calendar (callers hold the feed lock).
    store.remove_stale_temps(FEED_PATH.rpartition("/")[0], recursive=False)
    days = published_days(store)[-FEED_ENTRIES:]
    latest = datetime(1970, 1, 1, tzinfo=UTC)
    for day in days:  # feedgen prepends entries: oldest first gives newest first
        digest = read_digest(store, day)
        if digest is None:
            continue
        decision = digest.decision
        updated = (decision.decided_at if decision and decision.decided_at
                   else digest.generated_at)
        updated = madrid(updated)
        latest = max(latest, updated)
        entry = feed.add_entry()
        entry.id(feed_entry_id(feed_url, day, digest.version or 1))
        selection = digest.header.selection
        entry.title(f"BOE del {day:%d/%m/%Y}: {digest.header.items} elementos"
                    + (f", {digest.header.excluded} excluidos" if digest.header.excluded
                       else "")
                    + (f" (resumen parcial, {selection.label})" if selection else ""))
        # One link per entry: feedgen 1.0.0 writes an entry link's href only (no rel, no
        # type), so a second link would read as a second alternate.
        entry.link(href=feed_entry_link(feed_url, site_url, day,
                                        current_paths(store, day).get("html")),
                   rel="alternate",
                   type="text/html")
        entry.updated(updated)
        entry.published(updated)
        lines = [f"{s.name}{f' / {s.name_va}' if s.name_va else ''}: {s.items}"
                 for s in digest.header.sections]
        if selection:
            lines.insert(0, f"Resumen parcial, no es el BOE completo del día ({selection.label})")
        if decision and decision.reviewer:
            lines.append(f"Revisado por {decision.reviewer}")
        entry.summary("; ".join(lines))
    feed.updated(latest)
    store.write_atomic(FEED_PATH, feed.atom_str(pretty=True))
    return len(days)
