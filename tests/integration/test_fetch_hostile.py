"""`boeflow fetch` against a hostile BOE server (issue 9).

A recorded day is served as an attacker would serve it (`make_hostile` of
`tests/support/hostile_boe.py`): path traversal in identifiers, off-host URLs and
redirects, redirect loops, headers trickled one line at a time, a JSON sumario nested 100,000
deep, repeated identifiers. A second loopback
listener stands in for "another host". Every run goes through the real CLI in a subprocess:
it must write nothing outside `--data-dir`, send nothing to the other listener, end with a
manifest naming each refused item, and print no traceback.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from boeflow.boe.manifest import DayManifest
from boeflow.boe.replay import BoeServer
from boeflow.core.ids import is_boe_id
from tests.support.cli import run_boeflow
from tests.support.hostile_boe import HOSTILE_MODES, HostileMode, make_hostile

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "boe"
NOV6 = date(2024, 11, 6)
# From DATA/raw/boe/2024/11/06/items up to the test's own directory (see `layout`).
ESCAPE_DEPTH = 8

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def other_host() -> Iterator[BoeServer]:
    """Another host: must never receive a request."""
    with BoeServer(SAMPLES) as listener:
        yield listener


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(cwd, data dir): the data dir sits 8 levels below tmp_path's items directory."""
    cwd = tmp_path / "work"
    data = cwd / "data"
    cwd.mkdir()
    return cwd, data


def run_fetch(server: BoeServer, cwd: Path, data: Path, *args: str,
              env_extra: dict[str, str] | None = None, timeout: float = 90
              ) -> subprocess.CompletedProcess[str]:
    return run_boeflow(
        ["fetch", "--base-url", server.url, "--data-dir", str(data), "--date", NOV6.isoformat(),
         "--sections", "1", "--formats", "xml,pdf", *args], cwd=cwd, timeout=timeout, extra={
            "BOEFLOW_CONFIG": "/nonexistent/boeflow.toml", "BOEFLOW_BOE_RATE_LIMIT": "0",
            "BOEFLOW_BOE_READ_TIMEOUT": "2", "BOEFLOW_BOE_REQUEST_DEADLINE": "3",
            "BOEFLOW_BOE_MAX_ATTEMPTS": "2", "BOEFLOW_BOE_BACKOFF_INITIAL": "0.01",
            "BOEFLOW_BOE_BACKOFF_MAX": "0.05", **(env_extra or {})})


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def manifest(data: Path) -> DayManifest:
    return DayManifest.model_validate_json(
        (data / "raw" / "boe" / "2024" / "11" / "06" / "manifest.json").read_bytes())


def assert_one_clean_error_line(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]


def test_traversal_identifiers_write_nothing_outside_the_data_dir(
        layout: tuple[Path, Path], other_host: BoeServer, tmp_path: Path) -> None:
    cwd, data = layout
    escaped_abs = Path("/tmp/boeflow-escaped-absolute.xml")
    escaped_abs.unlink(missing_ok=True)
    with BoeServer(SAMPLES) as server:
        planted = make_hostile(server, "traversal_ids", NOV6, other_host=other_host.url,
                                      escape_depth=ESCAPE_DEPTH)
        result = run_fetch(server, cwd, data)
    # Everything written is under the data dir; the traversal targets do not exist.
    outside = files_under(tmp_path) - files_under(data)
    assert outside == set(), outside
    assert not any(Path("/tmp").glob("boeflow-escaped*")), "wrote into /tmp"
    assert not list(Path("/").glob("boeflow-escaped*"))
    # Each hostile id is a failed row, named, and nothing was stored for it.
    day = manifest(data)
    rows = {row.id: row for row in day.items}
    for hostile in planted[:-1]:
        row = rows[hostile]
        assert row.files and all(f.error and "not a BOE identifier" in f.error
                                 for f in row.files.values()), row
        assert all(f.path is None for f in row.files.values())
    assert day.sumario is not None
    assert any(p.error and "not a BOE identifier" in p.error for p in day.sumario.pdfs)
    # The genuine items of the section were fetched as usual.
    recorded = [row for row in day.items
                if is_boe_id(row.id) and (SAMPLES / "documents" / f"{row.id}.xml").exists()]
    assert recorded and all(row.files["xml"].ok for row in recorded)
    assert_one_clean_error_line(result)
    assert result.returncode == 1
    assert other_host.requests() == []


def test_off_host_redirects_are_refused_and_the_other_host_never_contacted(
        layout: tuple[Path, Path], other_host: BoeServer) -> None:
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        (target,) = make_hostile(server, "offhost_redirect", NOV6, other_host=other_host.url)
        result = run_fetch(server, cwd, data)
    assert other_host.requests() == [], other_host.requests()
    day = manifest(data)
    row = next(r for r in day.items if r.id == target)
    assert row.files["xml"].error and "redirect to another host refused" in \
        row.files["xml"].error
    assert row.files["xml"].path is None
    assert day.sumario is not None and day.sumario.pdfs[0].error
    assert "another host" in day.sumario.pdfs[0].error
    assert_one_clean_error_line(result)


def test_off_host_urls_in_the_sumario_are_failed_rows_not_a_traceback(
        layout: tuple[Path, Path], other_host: BoeServer) -> None:
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        (target,) = make_hostile(server, "offhost_urls", NOV6, other_host=other_host.url)
        result = run_fetch(server, cwd, data)
    assert other_host.requests() == []
    day = manifest(data)
    assert day.complete
    row = next(r for r in day.items if r.id == target)
    assert all(f.error and "outside the BOE site" in f.error for f in row.files.values())
    assert day.sumario is not None and day.sumario.pdfs[0].error
    assert_one_clean_error_line(result)


def test_redirect_loop_ends_as_a_failed_day_with_a_manifest(
        layout: tuple[Path, Path], other_host: BoeServer) -> None:
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        make_hostile(server, "redirect_loop", NOV6, other_host=other_host.url)
        result = run_fetch(server, cwd, data)
        api_requests = len(server.requests_for("/datosabiertos/api/boe/sumario/20241106"))
    day = manifest(data)
    assert day.status == "error"
    assert day.error and "redirect loop" in day.error
    assert api_requests <= 2  # one loop per attempt: loops are not retried
    assert_one_clean_error_line(result)
    assert other_host.requests() == []


def test_trickled_headers_are_cut_at_the_request_deadline(
        layout: tuple[Path, Path], other_host: BoeServer) -> None:
    """Read timeout 2 s, deadline 3 s, a header line every 0.5 s: the whole sumario request
    (both attempts) must end in about 2 x 3 s, not when the server gives up."""
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        make_hostile(server, "header_trickle", NOV6, trickle_seconds=0.5)
        started = time.monotonic()
        result = run_fetch(server, cwd, data, "--json",
                           env_extra={"BOEFLOW_BOE_LEGACY_FALLBACK": "false"})
        elapsed = time.monotonic() - started
    assert elapsed < 20, f"fetch took {elapsed:.1f} s"
    day = manifest(data)
    assert day.status == "error"
    assert day.error and "deadline" in day.error
    assert_one_clean_error_line(result)


def test_deeply_nested_json_sumario_is_a_day_error(layout: tuple[Path, Path]) -> None:
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        make_hostile(server, "deep_json", NOV6)
        result = run_fetch(server, cwd, data, "--sumario-format", "json",
                           env_extra={"BOEFLOW_BOE_LEGACY_FALLBACK": "false"})
    day = manifest(data)
    assert day.status == "error"
    assert day.error and "nested too deeply" in day.error
    assert_one_clean_error_line(result)


def test_repeated_identifiers_give_one_row_each(layout: tuple[Path, Path]) -> None:
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        (repeated,) = make_hostile(server, "duplicate_ids", NOV6)
        result = run_fetch(server, cwd, data, "--json")
        downloads = len(server.requests_for(f"/diario_boe/xml.php?id={repeated}"))
    day = manifest(data)
    ids = [row.id for row in day.items]
    assert ids.count(repeated) == 1
    assert len(ids) == len(set(ids))
    assert downloads == 1
    assert any(repeated in warning for warning in day.warnings)
    summary = json.loads(result.stdout)
    assert summary["days"][0]["status"] == "published"


def test_script_and_data_urls_in_the_sumario_are_never_requested(
        layout: tuple[Path, Path]) -> None:
    """javascript:/data:/off-host values in url_xml/url_pdf/url_html (the digest's link tests
    in tests/integration/test_digest_links.py use the same day): the fetch refuses the
    javascript: url_xml before any request and fetches the genuine items as usual."""
    cwd, data = layout
    with BoeServer(SAMPLES) as server:
        planted = make_hostile(server, "hostile_links", NOV6)
        result = run_fetch(server, cwd, data, "--formats", "xml")
        paths = [r.path for r in server.requests()]
    assert "Traceback" not in result.stderr
    assert not any("javascript" in p.lower() or "alert" in p for p in paths), paths
    day = manifest(data)
    rows = {row.id: row for row in day.items}
    refused = [row for row in rows.values() if row.url_xml == "javascript:alert(10)"]
    assert len(refused) == 1
    error = refused[0].files["xml"].error
    assert error and "outside the BOE site" in error
    assert rows[planted[0]].files["xml"].ok  # the item whose document lies about its ELI


def test_every_hostile_mode_is_covered_here() -> None:
    covered: set[HostileMode] = {"traversal_ids", "offhost_redirect", "offhost_urls",
                                 "redirect_loop", "header_trickle", "deep_json",
                                 "duplicate_ids", "hostile_links"}
    assert covered == set(HOSTILE_MODES)
