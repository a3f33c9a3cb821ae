"""Fetch BOE days into the raw store: sumario, selected items, manifest.

Idempotent and resumable: a file under its final name was checked before it was renamed
into place, so a rerun trusts it (after checking size and sha256 against the manifest, or
re-validating it when a killed run never recorded it) and only fetches what is missing or
failed. ``force`` refetches everything. One bad item never stops the day: its failure
becomes an error row in the manifest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import sha256
from typing import Literal, Protocol

from lxml import etree

from boeflow.boe.document import BOE_SITE, parse_document_meta
from boeflow.boe.http import BoeClient, Fetched, FetchError, Kind, NotFound, check_well_formed
from boeflow.boe.manifest import (
    MANIFEST_NAME,
    DayManifest,
    DaySummary,
    FileRecord,
    ItemRecord,
    Outcome,
    Representation,
    SumarioRecord,
)
from boeflow.boe.store import RawStore, StoreFull, StoreKeyError, day_prefix, load_manifest
from boeflow.boe.sumario import (
    NoPublication,
    Sumario,
    SumarioFormatError,
    SumarioItem,
    SumarioSource,
    parse_sumario,
)
from boeflow.core.errors import one_line
from boeflow.core.ids import is_boe_id, shown
from boeflow.core.settings import Settings
from boeflow.core.types import ReferenceOut
from boeflow.core.xmlsafe import parse_xml_bytes

log = logging.getLogger(__name__)

REPRESENTATIONS: tuple[Representation, ...] = ("xml", "html", "pdf")


class ProgressHook(Protocol):
    def start_day(self, day: date) -> None: ...
    def add_items(self, count: int) -> None: ...
    def item_done(self) -> None: ...


@dataclass
class FetchOptions:
    sections: list[str] | None = None
    formats: Sequence[Representation] = ("xml",)
    sumario_format: Literal["xml", "json"] = "xml"
    legacy_fallback: bool = True
    force: bool = False
    checkpoint_seconds: float = 2.0
    max_items: int = 20_000
    limit: int | None = None  # fetch only the first N selected items (the DAG's max_items)

    @classmethod
    def from_settings(cls, settings: Settings, *, sections: list[str] | None = None,
                      formats: Sequence[Representation] | None = None,
                      sumario_format: Literal["xml", "json"] | None = None,
                      force: bool = False, limit: int | None = None) -> FetchOptions:
        """Options from the settings, with the values a caller chose explicitly."""
        return cls(sections=sections, formats=list(formats or settings.boe_formats),
                   sumario_format=sumario_format or settings.boe_sumario_format,
                   legacy_fallback=settings.boe_legacy_fallback, force=force,
                   checkpoint_seconds=settings.boe_manifest_checkpoint,
                   max_items=settings.boe_max_items_per_sumario, limit=limit)


@dataclass
class _DocumentInfo:
    rango: str | None = None
    references: list[ReferenceOut] = field(default_factory=list)
    corrects: list[str] = field(default_factory=list)
    modifies: list[str] = field(default_factory=list)
    empty_text: bool | None = None


def api_sumario_url(day: date) -> str:
    return f"{BOE_SITE}/datosabiertos/api/boe/sumario/{day:%Y%m%d}"


def legacy_sumario_url(day: date) -> str:
    return f"{BOE_SITE}/diario_boe/xml.php?id=BOE-S-{day:%Y%m%d}"


def days_between(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def describe_document(item_id: str, data: bytes) -> _DocumentInfo:
    """Check an item XML is the BOE document asked for and read its links.

    Raises FetchError (not retriable) when it is another document or not one at all.
    """
    try:
        root = parse_xml_bytes(data)
        meta = parse_document_meta(root)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise FetchError(f"not a BOE document: {exc}") from exc
    if meta.id != item_id:
        raise FetchError(f"the server returned document {meta.id} instead")
    texto = root.find("texto")
    empty = texto is None or (not "".join(texto.itertext()).strip() and len(texto) == 0)
    return _DocumentInfo(
        rango=meta.rango,
        references=[ReferenceOut(**ref.as_dict()) for ref in meta.references],
        corrects=meta.corrects, modifies=meta.modifies, empty_text=empty)


def describe_pdf(boe_id: str, data: bytes) -> None:
    """Check a PDF opens and is the document asked for.

    BOE PDFs carry their id in ``/Subject``; a PDF naming another BOE id is refused, and so
    is one that names none and does not mention the id on its first page (old scans).
    """
    import pymupdf

    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises several types for damaged files
        raise FetchError(f"corrupt PDF ({exc})") from exc
    with document:
        if document.page_count == 0:
            raise FetchError("truncated or corrupt PDF (no readable page)")
        subject = ((document.metadata or {}).get("subject") or "").strip()
        if subject == boe_id:
            return
        if is_boe_id(subject):
            raise FetchError(f"the server returned the PDF of {subject} instead")
        try:
            first_page = document[0].get_text()[:20_000]
        except Exception as exc:
            raise FetchError(f"corrupt PDF ({exc})") from exc
        if boe_id not in first_page:
            raise FetchError(f"the PDF does not name {boe_id} (neither /Subject nor page 1)")


def _now() -> datetime:
    return datetime.now(UTC)


class Fetcher:
    def __init__(self, client: BoeClient, store: RawStore, options: FetchOptions,
                 progress: ProgressHook | None = None) -> None:
        self.client = client
        self.store = store
        self.options = options
        self.progress = progress

    # --- public ------------------------------------------------------------------------

    def fetch_range(self, start: date, end: date) -> list[DaySummary]:
        return [self.fetch_day(day) for day in days_between(start, end)]

    def fetch_day(self, day: date) -> DaySummary:
        if self.progress:
            self.progress.start_day(day)
        prefix = day_prefix(day)
        removed = self.store.remove_stale_temps(prefix)
        if removed:
            log.info("%s: removed %d temporary files left by an interrupted run", day, removed)
        previous = None if self.options.force else self._previous_manifest(day)
        summary = DaySummary(date=day, status="published")
        manifest = DayManifest(date=day, status="published",
                               formats=list(self.options.formats))
        sumario = self._fetch_sumario(day, prefix, previous, manifest)
        if sumario is None:
            summary.status = manifest.status
            summary.error = manifest.error
            self._write_manifest(prefix, manifest, complete=True)
            return summary
        assert manifest.sumario is not None
        summary.sumario_ids = manifest.sumario.sumario_ids
        self._fetch_sumario_pdfs(sumario, prefix, previous, manifest, summary)

        if len(sumario.items) > self.options.max_items:
            message = (f"sumario {day} lists {len(sumario.items)} items, over the limit of "
                       f"{self.options.max_items} (BOEFLOW_BOE_MAX_ITEMS_PER_SUMARIO)")
            manifest.status, manifest.error = "error", message
            summary.status, summary.error = "error", message
            self._write_manifest(prefix, manifest, complete=True)
            return summary
        selected, duplicates = unique_items(sumario.select(self.options.sections))
        if self.options.limit is not None:
            selected = selected[:self.options.limit]
        if duplicates:
            manifest.warnings.append(
                f"the sumario lists {', '.join(shown(d) for d in duplicates[:20])} more than "
                "once; each is fetched and recorded once")
        summary.items = len(selected)
        if self.progress:
            self.progress.add_items(len(selected))
        previous_rows = {row.id: row for row in previous.items} if previous else {}
        rows: dict[str, ItemRecord] = dict(previous_rows)
        order = list(dict.fromkeys(item.id for item in sumario.items))
        last_checkpoint = time.monotonic()
        for item in selected:
            rows[item.id] = self._fetch_item(item, prefix, previous_rows.get(item.id), summary)
            if self.progress:
                self.progress.item_done()
            if time.monotonic() - last_checkpoint >= self.options.checkpoint_seconds:
                manifest.items = self._ordered(rows, order)
                self._write_manifest(prefix, manifest, complete=False)
                last_checkpoint = time.monotonic()
        manifest.items = self._ordered(rows, order)
        self._write_manifest(prefix, manifest, complete=True)
        return summary

    # --- sumario -----------------------------------------------------------------------

    def _fetch_sumario(self, day: date, prefix: str, previous: DayManifest | None,
                       manifest: DayManifest) -> Sumario | None:
        """Fetch, check, store and parse the day's sumario; None when there is no BOE or
        it cannot be had (the manifest then says which)."""
        kind: Kind = "json" if self.options.sumario_format == "json" else "xml"
        source: SumarioSource = "api-json" if kind == "json" else "api-xml"
        attempts: list[tuple[SumarioSource, Kind, str, str]] = [
            (source, kind, api_sumario_url(day), f"{prefix}/sumario.{kind}")]
        if self.options.legacy_fallback:
            attempts.append(("legacy", "xml", legacy_sumario_url(day),
                             f"{prefix}/sumario-legacy.xml"))
        not_found: list[str] = []
        for source, kind, url, relative in attempts:
            prior = previous.sumario if previous else None
            stored = (prior if prior is not None and prior.path == relative and prior.ok
                      and self.store.sha256(relative) == prior.sha256 else None)
            record = SumarioRecord(representation=kind, url=url, source=source)
            try:
                fetched = self.client.fetch(url, kind,
                                            etag=stored.etag if stored else None,
                                            last_modified=stored.last_modified if stored
                                            else None)
            except NotFound as exc:
                not_found.append(_status_text(exc) or "HTTP 404")
                continue
            except FetchError as exc:
                if stored is not None:
                    # The stored copy was checked when written: carry on with it.
                    log.warning("%s: sumario fetch failed (%s); using the stored copy", day, exc)
                    return self._parse_stored_sumario(stored, manifest)
                return self._day_error(manifest, f"sumario {day}: {exc}", record)
            data = self.store.read(relative) if fetched.not_modified else fetched.content
            try:
                sumario = parse_sumario(data, source)
            except NoPublication as exc:
                not_found.append(exc.status_text)
                continue
            except (SumarioFormatError, etree.XMLSyntaxError) as exc:
                if source == "legacy" and not_found:
                    # The API (authoritative) said 404; the legacy page is not a sumario.
                    not_found.append(f"legacy: {exc}")
                    continue
                return self._day_error(manifest, f"sumario {day}: {exc}", record)
            if not fetched.not_modified and self.store.sha256(relative) != fetched.sha256:
                self.store.write_atomic(relative, data)
            fill_record(record, fetched, data, relative, stored)
            record.sumario_ids = [d.sumario_id for d in sumario.diarios if d.sumario_id]
            manifest.sumario = record
            return sumario
        manifest.status = "no_publication"
        manifest.sumario = SumarioRecord(representation=kind, url=attempts[0][2],
                                         source=attempts[0][0], http_status=404,
                                         status_text="; ".join(not_found))
        return None

    def _parse_stored_sumario(self, stored: SumarioRecord,
                              manifest: DayManifest) -> Sumario | None:
        assert stored.path is not None
        sumario = parse_sumario(self.store.read(stored.path), stored.source)  # type: ignore[arg-type]
        manifest.sumario = stored
        return sumario

    @staticmethod
    def _day_error(manifest: DayManifest, message: str, record: SumarioRecord) -> None:
        manifest.status = "error"
        manifest.error = message
        record.error = message
        manifest.sumario = record
        return None

    def _fetch_sumario_pdfs(self, sumario: Sumario, prefix: str, previous: DayManifest | None,
                            manifest: DayManifest, summary: DaySummary) -> None:
        if "pdf" not in self.options.formats or manifest.sumario is None:
            return
        prior = {p.url: p for p in previous.sumario.pdfs} if previous and previous.sumario else {}
        for diario in sumario.diarios:
            if not diario.url_pdf:
                continue
            name = diario.sumario_id or f"sumario-{diario.number}"
            if not is_boe_id(name):
                manifest.sumario.pdfs.append(FileRecord(
                    representation="pdf", url=diario.url_pdf, fetched_at=_now(),
                    error=f"sumario PDF of diario {shown(diario.number)}: {shown(name)} is not "
                          "a BOE identifier; nothing fetched or stored"))
                summary.count("failed")
                continue
            record, outcome, _ = self._fetch_file(
                name, "pdf", diario.url_pdf, diario.pdf_size, f"{prefix}/{name}.pdf",
                prior.get(diario.url_pdf), item_document=False)
            summary.count(outcome)
            manifest.sumario.pdfs.append(record)

    # --- items -------------------------------------------------------------------------

    def _fetch_item(self, item: SumarioItem, prefix: str, previous: ItemRecord | None,
                    summary: DaySummary) -> ItemRecord:
        row = item_record(item)
        if not is_boe_id(item.id):
            # The id would become a file name: refuse it before any I/O.
            for representation in self.options.formats:
                row.files[representation] = FileRecord(
                    representation=representation, url=item.url_for(representation),
                    error=f"{shown(item.id)}: not a BOE identifier (BOE-X-YYYY-N); "
                          "nothing fetched or stored", fetched_at=_now())
                summary.count("failed")
            return row
        if previous is not None:
            # Keep what earlier runs stored in representations not selected this time.
            row.files = {k: v for k, v in previous.files.items()
                         if k not in self.options.formats}
            row.rango, row.references = previous.rango, previous.references
            row.corrects, row.modifies = previous.corrects, previous.modifies
            row.empty_text = previous.empty_text
        wanted = list(self.options.formats)
        index = 0
        while index < len(wanted):
            representation = wanted[index]
            index += 1
            url = item.url_for(representation)
            if url is None:
                row.files[representation] = FileRecord(
                    representation=representation, url=None,
                    error=f"{item.id} {representation}: the sumario lists no URL")
                summary.count("failed")
                continue
            prior = previous.files.get(representation) if previous else None
            try:
                record, outcome, data = self._fetch_file(
                    item.id, representation, url,
                    item.pdf_size if representation == "pdf" else None,
                    f"{prefix}/items/{item.id}.{representation}", prior, item_document=True)
                if representation == "xml" and data is not None:
                    info = describe_document(item.id, data)
                    row.rango, row.references = info.rango, info.references
                    row.corrects, row.modifies = info.corrects, info.modifies
                    row.empty_text = info.empty_text
                    if info.empty_text and "pdf" not in wanted and item.url_pdf:
                        wanted.append("pdf")  # pre-1975 documents: the PDF holds the text
            except StoreFull:
                raise  # every later write would fail the same way: stop the day here
            except Exception as exc:  # one bad item must not stop the day
                log.exception("%s %s: unexpected failure", item.id, representation)
                record = FileRecord(representation=representation, url=url,
                                    error=f"{item.id} {representation}: {exc!r}")
                outcome = "failed"
            row.files[representation] = record
            summary.count(outcome)
        return row

    def _fetch_file(self, boe_id: str, representation: Representation, url: str,
                    declared_size: int | None, relative: str, prior: FileRecord | None,
                    *, item_document: bool) -> tuple[FileRecord, Outcome, bytes | None]:
        """Fetch one representation unless already stored; never raises FetchError.

        ``item_document``: an item's XML must be the ``<documento>`` of that very id.
        """
        kind: Kind = representation
        check_document = representation == "pdf" or (item_document and representation == "xml")
        if not self.options.force:
            kept = self._already_stored(boe_id, representation, url, declared_size, relative,
                                        prior, check_document)
            if kept is not None:
                return kept[0], "skipped", kept[1]
        record = FileRecord(representation=representation, url=url,
                            declared_size=declared_size)
        try:
            fetched = self.client.fetch(url, kind, expected_size=declared_size)
            if check_document:
                check_identity(boe_id, representation, fetched.content)
            self.store.path(relative)  # refuses a key outside the store before writing
        except (FetchError, StoreKeyError) as exc:
            record.http_status = exc.status if isinstance(exc, FetchError) else None
            record.attempts = exc.attempts if isinstance(exc, FetchError) else 0
            record.error = f"{boe_id} {representation}: {exc}"
            record.fetched_at = _now()
            log.info("%s", record.error)  # the manifest row carries it
            return record, "failed", None
        self.store.write_atomic(relative, fetched.content)
        fill_record(record, fetched, fetched.content, relative, None)
        return record, "fetched", fetched.content

    def _already_stored(self, boe_id: str, representation: Representation, url: str,
                        declared_size: int | None, relative: str, prior: FileRecord | None,
                        check_document: bool) -> tuple[FileRecord, bytes] | None:
        if not self.store.exists(relative):
            return None
        data = self.store.read(relative)
        digest = sha256(data).hexdigest()
        if prior is not None and prior.ok and prior.path == relative:
            if prior.sha256 == digest and prior.size == len(data):
                return prior, data
            return None  # changed behind our back: refetch
        # Stored by a run that died before its manifest checkpoint: the file was checked
        # before it got its final name, check it again and adopt it.
        try:
            if declared_size is not None and len(data) != declared_size:
                return None
            check_well_formed(representation, data)
            if check_document:
                check_identity(boe_id, representation, data)
        except FetchError:
            return None
        info = self.store.fs.info(self.store.path(relative))
        mtime = info.get("mtime") or info.get("LastModified")
        fetched_at = (datetime.fromtimestamp(mtime, UTC) if isinstance(mtime, (int, float))
                      else mtime if isinstance(mtime, datetime) else _now())
        record = FileRecord(representation=representation, url=url, path=relative,
                            declared_size=declared_size, size=len(data), sha256=digest,
                            http_status=200, fetched_at=fetched_at)
        return record, data

    # --- manifest ----------------------------------------------------------------------

    def _previous_manifest(self, day: date) -> DayManifest | None:
        """The manifest of an earlier run, to resume from; an unreadable one is ignored
        (the day is fetched again and the manifest rewritten)."""
        try:
            return load_manifest(self.store, day)
        except ValueError as exc:
            log.warning("ignoring the unreadable manifest of %s: %s", day, one_line(exc))
            return None

    def _write_manifest(self, prefix: str, manifest: DayManifest, complete: bool) -> None:
        manifest.complete = complete
        manifest.updated_at = _now()
        manifest.recount()
        self.store.write_atomic(f"{prefix}/{MANIFEST_NAME}", manifest.to_json_bytes())

    @staticmethod
    def _ordered(rows: dict[str, ItemRecord], order: Iterable[str]) -> list[ItemRecord]:
        ordered = [rows[i] for i in order if i in rows]
        known = set(order)
        return ordered + [row for i, row in rows.items() if i not in known]


def check_identity(boe_id: str, representation: Representation, data: bytes) -> None:
    """The stored body must be the document ``boe_id`` (XML: its ``<identificador>``,
    PDF: its ``/Subject`` or first page)."""
    if representation == "xml":
        describe_document(boe_id, data)
    elif representation == "pdf":
        describe_pdf(boe_id, data)


def unique_items(items: Iterable[SumarioItem]) -> tuple[list[SumarioItem], list[str]]:
    """Items in order with repeated ids dropped (the first listing wins), and the ids that
    were repeated."""
    seen: set[str] = set()
    unique: list[SumarioItem] = []
    duplicates: list[str] = []
    for item in items:
        if item.id in seen:
            if item.id not in duplicates:
                duplicates.append(item.id)
            continue
        seen.add(item.id)
        unique.append(item)
    return unique, duplicates


def item_record(item: SumarioItem) -> ItemRecord:
    return ItemRecord(
        id=item.id, diario=item.diario, section=item.section, section_name=item.section_name,
        department=item.department, department_code=item.department_code,
        epigrafe=item.epigrafe, title=item.title, control=item.control,
        url_xml=item.url_xml, url_html=item.url_html, url_pdf=item.url_pdf,
        pdf_size=item.pdf_size, first_page=item.first_page, last_page=item.last_page)


def fill_record(record: FileRecord, fetched: Fetched, data: bytes, relative: str,
                stored: FileRecord | None) -> None:
    """Describe a stored body; a 304 keeps the status and time of the stored 200."""
    record.path = relative
    record.size = len(data)
    record.sha256 = sha256(data).hexdigest()
    record.http_status = 200
    record.content_type = fetched.content_type or (stored.content_type if stored else None)
    record.etag = fetched.etag or (stored.etag if stored else None)
    record.last_modified = fetched.last_modified or (stored.last_modified if stored else None)
    record.fetched_at = stored.fetched_at if fetched.not_modified and stored else _now()
    record.attempts = fetched.attempts


def _status_text(exc: NotFound) -> str | None:
    """The ``status/text`` of a BOE 404 payload (XML or JSON), if the body is one."""
    try:
        if exc.body.lstrip().startswith(b"<"):
            text = parse_xml_bytes(exc.body).findtext("status/text")
            return text.strip() if text else None
        payload = json.loads(exc.body)
        status = payload.get("status", {}) if isinstance(payload, dict) else {}
        text = status.get("text") if isinstance(status, dict) else None
        return str(text) if text else None
    except (ValueError, etree.XMLSyntaxError):
        return None
