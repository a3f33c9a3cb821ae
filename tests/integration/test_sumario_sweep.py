"""Every recorded sumario (samples/boe/sumario and archive/, about 190 days) through fetch
and the digest build on the replay server: the recorded item XMLs are served, every other
item answers 404. Each day is one test named by its date (tests/support/sweep.py checks it).

The days run in one worker process of their own (spawned, so it holds no model or Airflow
import of the test session): its peak RSS, reset before each day, is that day's. Peak RSS and
wall time of each day go to ``sumario-sweep.jsonl`` in the session's temporary directory
(path printed at the end)."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.replay import BoeServer
from boeflow.boe.samples import recorded_sumario_days, unpack
from tests.conftest import SAMPLES
from tests.support.sweep import DayFigures, listed_items, sweep_day, sweep_day_in_this_process

DAYS = recorded_sumario_days(SAMPLES)
# Bounded memory: a fresh process fetching a day and building its digest never needs more
# than this; it peaks at 120-200 MiB per day (docs/scale.md).
PEAK_RSS_LIMIT_MIB = 400


@pytest.fixture(scope="module")
def sweeper() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Path, BoeClient, Path, ClientConfig]]:
    root = unpack(SAMPLES, tmp_path_factory.mktemp("recorded"))
    report = tmp_path_factory.getbasetemp() / "sumario-sweep.jsonl"
    report.write_text("")
    config = ClientConfig(user_agent="boeflow-sweep/1", rate_limit=0, max_attempts=1,
                          connect_timeout=5, read_timeout=10, request_deadline=20)
    with BoeServer(root) as server:
        served = ClientConfig(**{**config.__dict__, "base_url": server.url})
        with BoeClient(served) as client:
            yield root, client, report, served
    rows = [json.loads(line) for line in report.read_text().splitlines() if line]
    if rows:
        slowest = max(rows, key=lambda r: r["seconds"])
        largest = max(rows, key=lambda r: r["peak_rss_mib"])
        print(f"\nsumario sweep: {len(rows)} days, {sum(r['items'] for r in rows)} items; "
              f"slowest {slowest['day']} {slowest['seconds']} s; highest peak RSS "
              f"{largest['day']} {largest['peak_rss_mib']} MiB; per day: {report}")


def test_every_recorded_day_is_swept() -> None:
    assert len(DAYS) >= 189  # 2020-05-07 (legacy) and 188 open-data API days
    assert len({d.isoformat() for d in DAYS}) == len(DAYS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("day", DAYS, ids=lambda d: d.isoformat())
def test_recorded_day(day: date, replay: tuple[Path, BoeClient, Path, ClientConfig],
                      sweeper: ProcessPoolExecutor, tmp_path: Path) -> None:
    root, _, report, config = replay
    figures = sweeper.submit(sweep_day_in_this_process, config, root, day,
                             tmp_path / "store").result()
    with report.open("a") as out:
        out.write(json.dumps(figures.as_dict()) + "\n")
    assert figures.peak_rss_mib < PEAK_RSS_LIMIT_MIB, f"{day}: peak RSS {figures.peak_rss_mib}"


@pytest.mark.timeout(60)
def test_the_json_sumario_of_a_day(replay: tuple[Path, BoeClient, Path, ClientConfig],
                                   tmp_path: Path) -> None:
    """2024-11-06 is also recorded as API JSON: the same items, checked the same way."""
    root, client, _, _ = replay
    figures = sweep_day(client, root, date(2024, 11, 6), tmp_path / "store",
                        sumario_format="json")
    assert figures.items == 238


@pytest.mark.timeout(60)
def test_the_composed_day_through_fetch_and_digest(tmp_path: Path) -> None:
    """The composed 101-document day: every document fetched, every item listed once, its
    identifier on the digest."""
    from boeflow.boe.samples import COMPOSED_DAY, replay_root

    root = replay_root(SAMPLES, tmp_path / "root")
    with BoeServer(root) as server, \
            BoeClient(ClientConfig(base_url=server.url, rate_limit=0, max_attempts=1)) as client:
        figures = sweep_day(client, root, COMPOSED_DAY, tmp_path / "store")
    assert figures.items == figures.fetched == 101


def test_an_unreadable_sumario_fails_naming_its_day(
        replay: tuple[Path, BoeClient, Path, ClientConfig], tmp_path: Path) -> None:
    """A sumario the parser cannot read is a failure of that day, not a skip."""
    root, _, _, _ = replay
    broken = tmp_path / "root"
    (broken / "sumario").mkdir(parents=True)
    (broken / "documents").symlink_to(root / "documents")
    day = date(2024, 11, 13)
    good = (root / "sumario" / f"BOE-S-{day:%Y%m%d}.xml").read_bytes()
    # A section whose items carry no identificador: the parser refuses the sumario.
    bad = good.replace(b"<identificador>BOE-A-2024-23543</identificador>", b"", 1)
    (broken / "sumario" / f"BOE-S-{day:%Y%m%d}.xml").write_bytes(bad)
    with BoeServer(broken) as server, \
            BoeClient(ClientConfig(base_url=server.url, rate_limit=0, max_attempts=1)) as other, \
            pytest.raises(AssertionError, match="sumario of 2024-11-13: fetch ended error"):
        sweep_day(other, broken, day, tmp_path / "store")


def test_the_sweep_reads_sumarios_independently() -> None:
    """The checker's own reading agrees with the published counts (SOURCES.md: 238 items on
    2024-11-06, 60 in the legacy 2020-05-07 sumario)."""
    assert len(listed_items((SAMPLES / "sumario" / "BOE-S-20241106.xml").read_bytes())) == 238
    legacy = listed_items((SAMPLES / "sumario" / "BOE-S-20200507.xml").read_bytes())
    assert len(legacy) == 60 and all(item.id.startswith("BOE-") for item in legacy)


def test_figures_serialise() -> None:
    figures = DayFigures(day=date(2024, 11, 6), items=1, fetched=1, incidencias=0,
                         sections=["1"], seconds=0.5, peak_rss_mib=80.0)
    assert figures.as_dict()["day"] == "2024-11-06"
