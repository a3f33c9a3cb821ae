"""Fetch bounds and failure bookkeeping (issue 9): a full disk, Retry-After and the per-URL
time budget, the items-per-sumario limit, and attempts recorded on failed rows."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from boeflow.boe.fetch import Fetcher, FetchOptions
from boeflow.boe.http import BoeClient
from boeflow.boe.replay import BoeServer, Fault
from boeflow.boe.store import TEMP_MARKER, RawStore
from tests.integration.test_fetch import DOC, DOC_PATH, SAMPLES, fast_config, row, run_day
from tests.support.cli import run_boeflow
from tests.support.disk import tmpfs

NOV6 = date(2024, 11, 6)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def server() -> Iterator[BoeServer]:
    with BoeServer(SAMPLES) as running:
        yield running


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 kB filesystem (tmpfs), so writes fail with ENOSPC for real."""
    with tmpfs(tmp_path / "small-disk", "512k") as mount:
        yield mount


def test_a_full_disk_is_one_line_and_leaves_no_temporary_files(server: BoeServer,
                                                               small_disk: Path) -> None:
    """Main: an OSError traceback from the middle of the day, and `.part-` files left."""
    env = {**os.environ, "BOEFLOW_CONFIG": "/nonexistent/boeflow.toml",
           "BOEFLOW_BOE_RATE_LIMIT": "0"}
    result = run_boeflow(
        ["fetch", "--base-url", server.url, "--data-dir", str(small_disk / "data"), "--date",
         "2024-11-06", "--sections", "1", "--formats", "xml,pdf"], env=env, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full" in errors[0], result.stderr[-2000:]
    leftovers = [p for p in small_disk.rglob("*") if TEMP_MARKER in p.name]
    assert leftovers == []
    # Once there is room again, a rerun completes the day.
    shutil.rmtree(small_disk / "data" / "raw" / "boe" / "2024" / "11" / "06" / "items",
                  ignore_errors=True)
    rerun = run_boeflow(
        ["fetch", "--base-url", server.url, "--data-dir", str(small_disk / "data"), "--date",
         "2024-11-06", "--sections", "1", "--formats", "xml"], env=env, timeout=120)
    assert "Traceback" not in rerun.stderr
    assert (small_disk / "data" / "raw" / "boe" / "2024" / "11" / "06" / "manifest.json"
            ).exists()


def test_failed_rows_record_their_attempts(server: BoeServer, tmp_path: Path) -> None:
    """Main: `attempts: 0` on every failed row."""
    server.persistent[DOC_PATH] = Fault("status", 502)
    _, manifest = run_day(server, tmp_path, formats=["xml"])
    record = row(manifest).files["xml"]
    assert record.error == f"{DOC} xml: HTTP 502"
    assert record.attempts == 4 == len(server.requests_for(DOC_PATH))


def test_retry_after_is_capped_and_the_url_budget_ends_the_waiting(server: BoeServer,
                                                                  tmp_path: Path) -> None:
    """A server asking to come back in an hour, every time: we wait at most
    retry_after_max per attempt and give up when the URL's time budget is spent."""
    server.persistent[DOC_PATH] = Fault("retry_after", seconds=3600)
    config = fast_config(server.url, retry_after_max=0.4, max_attempts=50)
    config = config.__class__(**{**config.__dict__, "url_budget": 1.5})
    started = time.monotonic()
    _, manifest = run_day(server, tmp_path, formats=["xml"], config=config)
    elapsed = time.monotonic() - started
    record = row(manifest).files["xml"]
    assert record.error is not None and "429" in record.error
    assert 2 <= record.attempts <= 5, record.attempts
    assert elapsed < 10


def test_a_sumario_over_the_item_limit_is_a_day_error(server: BoeServer,
                                                      tmp_path: Path) -> None:
    options = FetchOptions(sections=["1"], formats=["xml"], max_items=100)
    with BoeClient(fast_config(server.url)) as client:
        summary = Fetcher(client, RawStore(tmp_path), options).fetch_day(NOV6)
    assert summary.status == "error"
    assert summary.error is not None and "over the limit of 100" in summary.error
    assert "BOEFLOW_BOE_MAX_ITEMS_PER_SUMARIO" in summary.error
    assert server.requests_for(DOC_PATH) == []
