"""Parse + chunk throughput over every sample XML, next to the peer-project baseline.

ours:     boeflow.parse.parse_bytes + boeflow.index.chunk.chunk_document (structure-aware,
          token-exact with the configured embedder's tokenizer, overlap 64)
baseline: BeautifulSoup(xml, "xml").get_text() + LangChain
          RecursiveCharacterTextSplitter(chunk_size=1200, chunk_overlap=100)

Both run in the same process on the same bytes, after one warm-up pass (model/tokenizer
and spaCy loading are not part of the per-document cost). Each side runs ``--rounds``
times and the best round counts, which damps noise from other processes.

Run: ``BOEFLOW_PROFILE=smoke python benchmarks/parse_chunk.py`` (the smoke embedder has
the same XLM-R sentencepiece tokenizer family as bge-m3). The last line is
``BENCH parse_chunk ours=<docs/s> baseline=<docs/s> unit=docs/s ratio=<ours/baseline>``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from bs4 import BeautifulSoup
from langchain_text_splitters import RecursiveCharacterTextSplitter

from boeflow.core.settings import get_settings
from boeflow.index.chunk import TokenCounter, chunk_document, default_max_tokens, load_tokenizer
from boeflow.parse import parse_bytes

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "boe" / "documents"


def best_round(work: Callable[[], int], rounds: int) -> tuple[float, int]:
    best = float("inf")
    produced = 0
    for _ in range(rounds):
        started = time.perf_counter()
        produced = work()
        best = min(best, time.perf_counter() - started)
    return best, produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    args = parser.parse_args()

    files = sorted(args.samples.glob("*.xml"))
    payloads = [(f.name, f.read_bytes()) for f in files]
    total_bytes = sum(len(data) for _, data in payloads)
    settings = get_settings()
    counter = TokenCounter(load_tokenizer(settings))
    max_tokens = default_max_tokens(settings)
    splitter = RecursiveCharacterTextSplitter(chunk_size=1200, chunk_overlap=100)

    def ours() -> int:
        return sum(len(chunk_document(parse_bytes(data, name), counter, max_tokens, 64))
                   for name, data in payloads)

    def baseline() -> int:
        return sum(len(splitter.split_text(BeautifulSoup(data, "xml").get_text()))
                   for _, data in payloads)

    ours()  # warm-up: spaCy pipeline, tokenizer caches
    baseline()
    ours_time, ours_chunks = best_round(ours, args.rounds)
    base_time, base_chunks = best_round(baseline, args.rounds)

    megabytes = total_bytes / 1e6
    ours_rate, base_rate = len(payloads) / ours_time, len(payloads) / base_time
    print(f"{len(payloads)} documents, {megabytes:.2f} MB, embedder {settings.embed_model}, "
          f"max_tokens={max_tokens}, best of {args.rounds} rounds")
    print(f"ours      {ours_rate:8.2f} docs/s {megabytes / ours_time:7.2f} MB/s "
          f"{ours_chunks:6d} chunks (structured, token-exact)")
    print(f"baseline  {base_rate:8.2f} docs/s {megabytes / base_time:7.2f} MB/s "
          f"{base_chunks:6d} chunks (bs4 get_text + RecursiveCharacterTextSplitter 1200/100)")
    print(f"BENCH parse_chunk ours={ours_rate:.2f} baseline={base_rate:.2f} unit=docs/s "
          f"ratio={ours_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
