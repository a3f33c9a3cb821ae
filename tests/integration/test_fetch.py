"""The BOE source client against a real loopback HTTP server serving the recorded samples,
with injected faults. Network traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from boeflow.boe.fetch import Fetcher, FetchOptions
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.manifest import DayManifest, DaySummary, ItemRecord
from boeflow.boe.replay import BoeServer, Fault, Served
from boeflow.boe.store import TEMP_MARKER, RawStore

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "boe"
NOV6 = date(2024, 11, 6)
DOC = "BOE-A-2024-22928"
DOC_PATH = f"/diario_boe/xml.php?id={DOC}"
SUMARIO_PDF_PATH = "/boe/dias/2024/11/06/pdfs/BOE-S-2024-268.pdf"
SUMARIO_PATH = "/datosabiertos/api/boe/sumario/20241106"
SECTION_1 = ["BOE-A-2024-22928", "BOE-A-2024-22929", "BOE-A-2024-22930", "BOE-A-2024-22931",
             "BOE-A-2024-22932", "BOE-A-2024-22933", "BOE-A-2024-22934", "BOE-A-2024-22935"]

pytestmark = pytest.mark.timeout(60)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server() -> Iterator[BoeServer]:
    with BoeServer(SAMPLES) as running:
        yield running


def fast_config(base_url: str, **overrides: float) -> ClientConfig:
    """Small timeouts and backoff so the fault tests stay fast."""
    values: dict[str, float] = {"rate_limit": 0, "connect_timeout": 1.0, "read_timeout": 0.3,
                                "request_deadline": 0.6, "max_attempts": 4,
                                "backoff_initial": 0.01, "backoff_max": 0.05,
                                "retry_after_max": 2.0}
    values.update(overrides)
    return ClientConfig(base_url=base_url, user_agent="boeflow-test/1",
                        rate_limit=values["rate_limit"],
                        connect_timeout=values["connect_timeout"],
                        read_timeout=values["read_timeout"],
                        request_deadline=values["request_deadline"],
                        max_attempts=int(values["max_attempts"]),
                        backoff_initial=values["backoff_initial"],
                        backoff_max=values["backoff_max"],
                        retry_after_max=values["retry_after_max"],
                        max_bytes=int(values.get("max_bytes", 50 * 1024 * 1024)))


def run_day(server: BoeServer, store: Path, day: date = NOV6, *,
            config: ClientConfig | None = None, **options: object
            ) -> tuple[DaySummary, DayManifest]:
    settings: dict[str, object] = {"sections": ["1"], "formats": ["xml", "pdf"], **options}
    opts = FetchOptions(**settings)  # type: ignore[arg-type]
    with BoeClient(config or fast_config(server.url)) as client:
        summary = Fetcher(client, RawStore(store), opts).fetch_day(day)
    manifest = DayManifest.model_validate_json(
        (store / f"boe/{day:%Y/%m/%d}/manifest.json").read_bytes())
    return summary, manifest


def day_dir(store: Path, day: date = NOV6) -> Path:
    return store / f"boe/{day:%Y/%m/%d}"


def assert_counts_add_up(summary: DaySummary, manifest: DayManifest) -> None:
    files = [f for row in manifest.items for f in row.files.values()]
    pdfs = manifest.sumario.pdfs if manifest.sumario else []
    assert summary.fetched + summary.skipped + summary.failed == len(files) + len(pdfs)
    assert summary.failed == sum(1 for f in [*files, *pdfs] if f.error)
    assert manifest.counts.items == len(manifest.items) == summary.items
    assert manifest.counts.files_stored + manifest.counts.files_failed == len(files)
    assert manifest.complete


def assert_no_temp_files(store: Path) -> None:
    assert [p for p in store.rglob("*") if TEMP_MARKER in p.name] == []


def row(manifest: DayManifest, boe_id: str = DOC) -> ItemRecord:
    return next(r for r in manifest.items if r.id == boe_id)


def complete_200s(server: BoeServer, path: str) -> int:
    return sum(1 for r in server.requests_for(path) if r.status == 200 and r.complete)


# --- acceptance -------------------------------------------------------------------------------

def test_fetching_a_whole_day_matches_the_samples_byte_for_byte(server: BoeServer,
                                                                  tmp_path: Path) -> None:
    summary, manifest = run_day(server, tmp_path, sections=None)
    folder = day_dir(tmp_path)
    assert summary.status == "published" and summary.sumario_ids == ["BOE-S-2024-268"]
    assert summary.items == len(manifest.items) == 238

    # Sumario, sumario PDF and the recorded item: stored, and the manifest sha256 is the
    # sha256 of the sample file.
    assert manifest.sumario is not None
    sample_sumario = SAMPLES / "sumario/BOE-S-20241106.xml"
    assert manifest.sumario.sha256 == sha(sample_sumario) == sha(folder / "sumario.xml")
    assert manifest.sumario.url == "https://www.boe.es" + SUMARIO_PATH
    sumario_pdf = manifest.sumario.pdfs[0]
    assert sumario_pdf.sha256 == sha(SAMPLES / "pdf/BOE-S-2024-268.pdf")
    assert sumario_pdf.size == sumario_pdf.declared_size == 443239
    assert (folder / "BOE-S-2024-268.pdf").read_bytes() == \
        (SAMPLES / "pdf/BOE-S-2024-268.pdf").read_bytes()
    xml = row(manifest).files["xml"]
    assert xml.sha256 == sha(SAMPLES / f"documents/{DOC}.xml") == sha(folder / f"items/{DOC}.xml")
    assert xml.http_status == 200 and xml.path == f"boe/2024/11/06/items/{DOC}.xml"

    # Manifest row fields from the sumario and from the document's <analisis>.
    first = row(manifest)
    assert (first.section, first.department, first.epigrafe) == (
        "1", "JEFATURA DEL ESTADO", "Medidas urgentes")
    assert first.pdf_size == 536367 and first.rango == "Real Decreto-ley"
    assert first.references and first.empty_text is False

    # Everything not recorded answered 404: one clear error row per file, naming the id.
    stored_ok = {(r.id, k) for r in manifest.items for k, f in r.files.items() if f.ok}
    assert stored_ok == {(DOC, "xml")}
    for r in manifest.items:
        for rep, f in r.files.items():
            if (r.id, rep) != (DOC, "xml"):
                assert f.error == f"{r.id} {rep}: HTTP 404 Not Found" and f.http_status == 404
    assert (summary.fetched, summary.skipped, summary.failed) == (2, 0, 475)
    assert_counts_add_up(summary, manifest)
    assert sorted(p.name for p in (folder / "items").iterdir()) == [f"{DOC}.xml"]
    # Politeness: every request identified itself.
    assert {r.headers.get("user-agent") for r in server.requests()} == {"boeflow-test/1"}


def test_legacy_sumario_fallback_and_correction_links(server: BoeServer,
                                                      tmp_path: Path) -> None:
    day = date(2020, 5, 7)
    summary, manifest = run_day(server, tmp_path, day, sections=["3"], formats=["xml"])
    assert manifest.sumario is not None and manifest.sumario.source == "legacy"
    assert manifest.sumario.sha256 == sha(SAMPLES / "sumario/BOE-S-20200507.xml")
    correction = row(manifest, "BOE-A-2020-4867")
    assert correction.files["xml"].sha256 == sha(SAMPLES / "documents/BOE-A-2020-4867.xml")
    assert correction.corrects, "a corrección de errores links to the document it corrects"
    assert all(ref.relation == "corrige" for ref in correction.references
               if ref.target_id in correction.corrects)
    stored = sorted(r.id for r in manifest.items if r.files["xml"].ok)
    assert stored == ["BOE-A-2020-4866", "BOE-A-2020-4867", "BOE-A-2020-4871"]
    assert_counts_add_up(summary, manifest)


def test_json_sumario_gives_the_same_items_as_xml(server: BoeServer, tmp_path: Path) -> None:
    _, from_xml = run_day(server, tmp_path / "xml", formats=["xml"])
    summary, from_json = run_day(server, tmp_path / "json", formats=["xml"],
                                 sumario_format="json")
    assert from_json.sumario is not None
    assert from_json.sumario.sha256 == sha(SAMPLES / "sumario/BOE-S-20241106.json")
    strip = {"files": {"__all__": {"fetched_at", "etag"}}}
    assert [r.model_dump(exclude=strip) for r in from_json.items] == \
        [r.model_dump(exclude=strip) for r in from_xml.items]
    assert [r.id for r in from_json.items] == SECTION_1
    assert_counts_add_up(summary, from_json)


def test_json_sumario_with_a_single_object_where_a_list_is_expected(
        server: BoeServer, tmp_path: Path) -> None:
    raw = json.loads((SAMPLES / "sumario/BOE-S-20241106.json").read_bytes())
    raw["data"]["sumario"]["diario"] = raw["data"]["sumario"]["diario"][0]
    body = json.dumps(raw).encode()
    server.overrides[SUMARIO_PATH] = Served(body, "application/json")
    summary, manifest = run_day(server, tmp_path, formats=["xml"], sumario_format="json")
    assert manifest.sumario is not None
    assert manifest.sumario.sha256 == hashlib.sha256(body).hexdigest()
    assert [r.id for r in manifest.items] == SECTION_1
    assert row(manifest).files["xml"].ok
    assert_counts_add_up(summary, manifest)


# --- retriable faults ------------------------------------------------------------------------

RETRIABLE = {
    "500 then success": Fault("status", 500),
    "503 then success": Fault("status", 503),
    "timeout": Fault("timeout", seconds=1.0),
    "connection reset mid-body": Fault("reset"),
    "truncated body": Fault("truncate"),
    "very slow response": Fault("slow", seconds=2.0),
}


@pytest.mark.parametrize("fault", RETRIABLE.values(), ids=RETRIABLE.keys())
def test_retriable_fault_ends_with_the_file_stored_once(server: BoeServer, tmp_path: Path,
                                                        fault: Fault) -> None:
    server.inject(DOC_PATH, fault)
    summary, manifest = run_day(server, tmp_path)
    record = row(manifest).files["xml"]
    assert record.error is None and record.attempts == 2
    assert record.sha256 == sha(SAMPLES / f"documents/{DOC}.xml")
    assert (day_dir(tmp_path) / f"items/{DOC}.xml").read_bytes() == \
        (SAMPLES / f"documents/{DOC}.xml").read_bytes()
    requests = server.requests_for(DOC_PATH)
    assert len(requests) == 2 and complete_200s(server, DOC_PATH) == 1
    assert_no_temp_files(tmp_path)
    assert_counts_add_up(summary, manifest)


def test_429_waits_for_retry_after(server: BoeServer, tmp_path: Path) -> None:
    server.inject(DOC_PATH, Fault("retry_after", seconds=1))
    summary, manifest = run_day(server, tmp_path, formats=["xml"])
    first, second = server.requests_for(DOC_PATH)
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95  # Retry-After: 1, far above the 0.01 s backoff
    assert row(manifest).files["xml"].ok
    assert_counts_add_up(summary, manifest)


def test_pdf_cut_short_without_content_length_fails_the_size_check_then_recovers(
        server: BoeServer, tmp_path: Path) -> None:
    server.inject(SUMARIO_PDF_PATH, Fault("truncate_no_length"))
    summary, manifest = run_day(server, tmp_path, formats=["pdf"])
    assert manifest.sumario is not None
    record = manifest.sumario.pdfs[0]
    assert record.ok and record.attempts == 2 and record.size == 443239
    assert len(server.requests_for(SUMARIO_PDF_PATH)) == 2
    assert_no_temp_files(tmp_path)
    assert_counts_add_up(summary, manifest)


def test_persistent_5xx_gives_up_after_max_attempts(server: BoeServer, tmp_path: Path) -> None:
    server.persistent[DOC_PATH] = Fault("status", 502)
    summary, manifest = run_day(server, tmp_path, formats=["xml"])
    record = row(manifest).files["xml"]
    assert record.error == f"{DOC} xml: HTTP 502" and record.http_status == 502
    assert len(server.requests_for(DOC_PATH)) == 4  # max_attempts
    assert not (day_dir(tmp_path) / f"items/{DOC}.xml").exists()
    assert_counts_add_up(summary, manifest)


# --- non-retriable faults --------------------------------------------------------------------

NON_RETRIABLE = {
    "malformed XML": (Fault("malformed"), "malformed XML"),
    "wrong content-type": (Fault("content_type", content_type="text/html; charset=utf-8"),
                           "expected XML but got content-type 'text/html; charset=utf-8'"),
    "403": (Fault("status", 403), "HTTP 403"),
}


@pytest.mark.parametrize("fault,message", NON_RETRIABLE.values(), ids=NON_RETRIABLE.keys())
def test_non_retriable_fault_is_a_clear_error_row(server: BoeServer, tmp_path: Path,
                                                  fault: Fault, message: str) -> None:
    server.persistent[DOC_PATH] = fault
    summary, manifest = run_day(server, tmp_path, formats=["xml"])
    record = row(manifest).files["xml"]
    assert record.error is not None
    assert record.error.startswith(f"{DOC} xml: ") and message in record.error
    assert record.path is None and record.sha256 is None
    assert len(server.requests_for(DOC_PATH)) == 1  # no retry
    assert not (day_dir(tmp_path) / f"items/{DOC}.xml").exists()
    assert_no_temp_files(tmp_path)
    assert summary.status == "published"  # one bad item never fails the day
    assert_counts_add_up(summary, manifest)


def test_body_over_the_size_cap_is_refused(server: BoeServer, tmp_path: Path) -> None:
    config = fast_config(server.url, max_bytes=200_000)  # the sumario (192,935 B) fits
    summary, manifest = run_day(server, tmp_path, formats=["xml"], config=config)
    record = row(manifest).files["xml"]  # the document is 232,935 bytes
    assert record.error is not None and "exceeds the 200000-byte cap" in record.error
    assert len(server.requests_for(DOC_PATH)) == 1
    assert_counts_add_up(summary, manifest)


def test_malformed_sumario_is_a_day_error(server: BoeServer, tmp_path: Path) -> None:
    server.persistent[SUMARIO_PATH] = Fault("malformed")
    summary, manifest = run_day(server, tmp_path)
    assert summary.status == manifest.status == "error"
    assert summary.error is not None and "malformed XML" in summary.error
    assert not (day_dir(tmp_path) / "sumario.xml").exists()
    assert manifest.items == [] and summary.items == 0


def test_404_day_is_no_publication(server: BoeServer, tmp_path: Path) -> None:
    day = date(2024, 11, 10)
    summary, manifest = run_day(server, tmp_path, day)
    assert summary.status == manifest.status == "no_publication"
    assert summary.error is None and manifest.error is None
    assert manifest.sumario is not None
    assert "La información solicitada no existe" in (manifest.sumario.status_text or "")
    assert (summary.items, summary.fetched, summary.failed) == (0, 0, 0)
    # The API first, then the legacy page; nothing else.
    assert [r.path for r in server.requests()] == [
        "/datosabiertos/api/boe/sumario/20241110", "/diario_boe/xml.php?id=BOE-S-20241110"]
    server.clear_log()
    summary, _ = run_day(server, tmp_path, day, legacy_fallback=False)
    assert summary.status == "no_publication" and len(server.requests()) == 1


# --- idempotence ------------------------------------------------------------------------------

def test_second_run_downloads_nothing(server: BoeServer, tmp_path: Path) -> None:
    first, _ = run_day(server, tmp_path)
    assert first.fetched == 2  # the item XML and the sumario PDF
    before = {p: p.read_bytes() for p in day_dir(tmp_path).rglob("*") if p.is_file()
              and p.name != "manifest.json"}
    server.clear_log()
    second, manifest = run_day(server, tmp_path)
    assert (second.fetched, second.skipped) == (0, 2)
    assert [r.status for r in server.requests_for(SUMARIO_PATH)] == [304]  # conditional
    assert server.requests_for(DOC_PATH) == [] and server.requests_for(SUMARIO_PDF_PATH) == []
    assert [r for r in server.requests() if r.status == 200] == []
    # Only the earlier failures (404 items) were asked again.
    assert {r.status for r in server.requests()} == {304, 404}
    after = {p: p.read_bytes() for p in day_dir(tmp_path).rglob("*") if p.is_file()
             and p.name != "manifest.json"}
    assert after == before
    assert row(manifest).files["xml"].sha256 == sha(SAMPLES / f"documents/{DOC}.xml")
    assert_counts_add_up(second, manifest)

    server.clear_log()
    forced, _ = run_day(server, tmp_path, force=True)
    assert forced.fetched == 2 and complete_200s(server, DOC_PATH) == 1


def test_a_stored_file_that_changed_is_fetched_again(server: BoeServer, tmp_path: Path) -> None:
    run_day(server, tmp_path, formats=["xml"])
    stored = day_dir(tmp_path) / f"items/{DOC}.xml"
    stored.write_bytes(stored.read_bytes().replace(b"Real Decreto-ley", b"Real Decreto-lez"))
    server.clear_log()
    summary, manifest = run_day(server, tmp_path, formats=["xml"])
    assert summary.fetched == 1 and complete_200s(server, DOC_PATH) == 1
    assert sha(stored) == sha(SAMPLES / f"documents/{DOC}.xml") == \
        row(manifest).files["xml"].sha256


def test_files_stored_before_a_lost_manifest_are_adopted(server: BoeServer,
                                                         tmp_path: Path) -> None:
    _, reference = run_day(server, tmp_path)
    (day_dir(tmp_path) / "manifest.json").unlink()
    server.clear_log()
    summary, manifest = run_day(server, tmp_path)
    assert summary.fetched == 0 and summary.skipped == 2
    assert [r for r in server.requests() if r.status == 200 and r.path != SUMARIO_PATH] == []
    assert row(manifest).files["xml"].sha256 == row(reference).files["xml"].sha256
    assert row(manifest).corrects == row(reference).corrects
    assert row(manifest).references == row(reference).references


# --- the CLI, kill -9 -------------------------------------------------------------------------

def cli(server: BoeServer, data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "boeflow", "fetch", "--base-url", server.url,
            "--data-dir", str(data_dir), *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"BOEFLOW_CONFIG": "/nonexistent/boeflow.toml", "BOEFLOW_BOE_RATE_LIMIT": "0",
                "BOEFLOW_BOE_READ_TIMEOUT": "2", "BOEFLOW_BOE_BACKOFF_INITIAL": "0.01",
                "BOEFLOW_BOE_BACKOFF_MAX": "0.05", "BOEFLOW_BOE_MANIFEST_CHECKPOINT": "0.2"})
    return env


BACKFILL = ["--date", "2024-11-06", "--to", "2024-11-13", "--sections", "1,3",
            "--formats", "xml,pdf"]


def store_snapshot(store: Path) -> dict[str, object]:
    """Every file's bytes, except the run-specific fields of the manifests."""
    snapshot: dict[str, object] = {}
    for path in sorted(store.rglob("*")):
        if not path.is_file():
            continue
        key = str(path.relative_to(store))
        if path.name == "manifest.json":
            manifest = DayManifest.model_validate_json(path.read_bytes())
            volatile = {"fetched_at", "etag", "last_modified", "attempts", "content_type"}
            snapshot[key] = manifest.model_dump(
                mode="json", exclude={"updated_at": True, "sumario": volatile | {"pdfs"},
                                      "items": {"__all__": {"files": {"__all__": volatile}}}})
            pdfs = manifest.sumario.pdfs if manifest.sumario else []
            snapshot[key + "#pdfs"] = [p.model_dump(mode="json", exclude=volatile) for p in pdfs]
        else:
            snapshot[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snapshot


def test_kill_9_during_a_backfill_then_rerun_equals_an_uninterrupted_run(
        tmp_path: Path) -> None:
    # ~5 ms per request, so the backfill (3 published days, 5 empty ones, the items in
    # sections 1 and 3) lasts long enough to be killed in the middle, twice.
    with BoeServer(SAMPLES, latency=0.005) as server:
        reference = tmp_path / "reference"
        done = subprocess.run(cli(server, reference, *BACKFILL, "--json"), env=cli_env(),
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 1, done.stderr  # the unrecorded items fail (404)
        report = json.loads(done.stdout)
        assert [d["status"] for d in report["days"]] == \
            ["published"] + ["no_publication"] * 5 + ["published"] * 2  # 12 and 13 recorded

        killed = tmp_path / "killed"
        targets = [killed / "raw/boe/2024/11/06/items/BOE-A-2024-22928.xml",
                   killed / "raw/boe/2024/11/13/sumario.xml"]
        for target in targets:
            process = subprocess.Popen(cli(server, killed, *BACKFILL), env=cli_env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not target.exists() and process.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL, "the run ended before the kill"
        # The killed run left an unfinished store behind.
        assert store_snapshot(killed / "raw") != store_snapshot(reference / "raw")

        server.clear_log()
        rerun = subprocess.run(cli(server, killed, *BACKFILL), env=cli_env(),
                               capture_output=True, timeout=60, check=False)
        assert rerun.returncode == 1, rerun.stderr
        assert store_snapshot(killed / "raw") == store_snapshot(reference / "raw")
        assert_no_temp_files(killed)
        # What the killed runs stored was not downloaded again.
        assert complete_200s(server, DOC_PATH) == 0


def test_cli_no_publication_day_exits_zero_with_a_json_summary(server: BoeServer,
                                                               tmp_path: Path) -> None:
    done = subprocess.run(cli(server, tmp_path, "--date", "2024-11-10", "--json"),
                          env=cli_env(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["days"][0]["status"] == "no_publication"
    bad = subprocess.run(cli(server, tmp_path, "--date", "2024-11-10", "--to", "2024-11-01"),
                         env=cli_env(), capture_output=True, timeout=60, check=False)
    assert bad.returncode == 1 and b"is before --date" in bad.stderr


def test_object_store_through_fsspec(server: BoeServer) -> None:
    """The store is an fsspec URL; the in-memory filesystem stands in for S3 here."""
    store = RawStore("memory://boeflow-test-store")
    options = FetchOptions(sections=["1"], formats=["xml"])
    with BoeClient(fast_config(server.url)) as client:
        first = Fetcher(client, store, options).fetch_day(NOV6)
        second = Fetcher(client, store, options).fetch_day(NOV6)
    assert (first.fetched, second.fetched, second.skipped) == (1, 0, 1)
    assert store.sha256(f"boe/2024/11/06/items/{DOC}.xml") == \
        sha(SAMPLES / f"documents/{DOC}.xml")
    assert not [p for p in store.list_files() if TEMP_MARKER in p]
    store.fs.rm(store.path("boe"), recursive=True)
