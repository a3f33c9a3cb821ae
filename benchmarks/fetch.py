"""Fetch throughput against the loopback BOE server, rate limit lifted.

* ours: ``Fetcher.fetch_day`` for 2024-11-06, every section, XML per item (238 items: the
  recorded one is stored, the others answer 404 and become error rows), into a fresh store
  each round: sumario fetch + parse, per-item request, checks, atomic writes, manifest.
* baseline: a bare ``httpx.Client`` loop GETting the same URLs in the same order, no checks,
  nothing stored.
* client overhead: ``BoeClient.fetch`` versus ``httpx.Client.get`` over the 21 recorded item
  documents (real 200 bodies, XML well-formedness check included), per request.

Prints one summary line: ``BENCH fetch ours=… baseline=… unit=items/s ratio=…``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from boeflow.boe.fetch import Fetcher, FetchOptions
from boeflow.boe.http import BoeClient, ClientConfig
from boeflow.boe.replay import BoeServer
from boeflow.boe.store import RawStore
from boeflow.boe.sumario import parse_api_xml, rebase_url

REPO = Path(__file__).resolve().parents[1]


SAMPLES = REPO / "samples" / "boe"
DAY = date(2024, 11, 6)


def config(base_url: str) -> ClientConfig:
    return ClientConfig(base_url=base_url, user_agent="boeflow-bench", rate_limit=0,
                        max_attempts=1)


def ours(base_url: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as store, BoeClient(config(base_url)) as client:
        fetcher = Fetcher(client, RawStore(store), FetchOptions(formats=["xml"]))
        start = time.perf_counter()
        summary = fetcher.fetch_day(DAY)
        elapsed = time.perf_counter() - start
    return summary.items / elapsed, summary.items


def baseline(base_url: str, urls: list[str]) -> float:
    with httpx.Client(headers={"User-Agent": "bare-httpx"}) as client:
        start = time.perf_counter()
        client.get(f"{base_url}/datosabiertos/api/boe/sumario/{DAY:%Y%m%d}",
                   headers={"Accept": "application/xml"})
        for url in urls:
            client.get(url)
        elapsed = time.perf_counter() - start
    return len(urls) / elapsed


def per_request(base_url: str, documents: list[str], repeats: int) -> tuple[float, float]:
    """Mean seconds per request: (BoeClient.fetch, bare httpx)."""
    canonical = [f"https://www.boe.es/diario_boe/xml.php?id={d}" for d in documents]
    with BoeClient(config(base_url)) as client:
        start = time.perf_counter()
        for _ in range(repeats):
            for url in canonical:
                client.fetch(url, "xml")
        ours_s = (time.perf_counter() - start) / (repeats * len(canonical))
    with httpx.Client() as bare:
        start = time.perf_counter()
        for _ in range(repeats):
            for url in canonical:
                bare.get(rebase_url(url, base_url)).raise_for_status()
        bare_s = (time.perf_counter() - start) / (repeats * len(canonical))
    return ours_s, bare_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    items = parse_api_xml((SAMPLES / "sumario/BOE-S-20241106.xml").read_bytes()).items
    documents = sorted(p.stem for p in (SAMPLES / "documents").glob("*.xml"))
    with BoeServer(SAMPLES) as server:
        urls = [rebase_url(i.url_xml, server.url) for i in items if i.url_xml]
        ours(server.url)  # warm-up (imports, first connection)
        baseline(server.url, urls)
        ours_rates, base_rates = [], []
        for _ in range(args.rounds):  # interleaved so drift hits both alike
            rate, count = ours(server.url)
            ours_rates.append(rate)
            base_rates.append(baseline(server.url, urls))
        ours_s, bare_s = per_request(server.url, documents, repeats=args.rounds)

    ours_rate = statistics.median(ours_rates)
    base_rate = statistics.median(base_rates)
    print(f"day {DAY}: {count} items (xml), {args.rounds} rounds, median")
    print(f"  fetcher   {ours_rate:8.1f} items/s  ({1000 / ours_rate:.2f} ms/item)")
    print(f"  bare loop {base_rate:8.1f} items/s  ({1000 / base_rate:.2f} ms/item)")
    print(f"  fetcher overhead per item: {1000 / ours_rate - 1000 / base_rate:+.2f} ms")
    print(f"client on {len(documents)} recorded documents (200, XML checked):")
    print(f"  BoeClient.fetch {ours_s * 1000:.2f} ms/request, bare httpx {bare_s * 1000:.2f} "
          f"ms/request, overhead {(ours_s - bare_s) * 1000:+.2f} ms/request")
    print(f"BENCH fetch ours={ours_rate:.1f} baseline={base_rate:.1f} unit=items/s "
          f"ratio={ours_rate / base_rate:.3f}")


if __name__ == "__main__":
    main()
