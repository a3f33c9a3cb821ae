"""The process's one model pool: one object per kind and key, built once, counted, closed."""

from __future__ import annotations

import threading

from boeflow.models.pool import ModelPool


class _Model:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_one_object_per_kind_and_key_built_once() -> None:
    pool = ModelPool()
    built: list[str] = []

    def factory(name: str) -> _Model:
        built.append(name)
        return _Model()

    first = pool.get("embedder", ("bge", None), lambda: factory("bge"))
    assert pool.get("embedder", ("bge", None), lambda: factory("again")) is first
    other = pool.get("generator", ("bge", None), lambda: factory("generator"))
    assert other is not first and built == ["bge", "generator"]
    assert pool.members("embedder") == [first] and pool.members("generator") == [other]


def test_concurrent_requests_share_one_build() -> None:
    pool = ModelPool()
    built: list[int] = []
    got: list[object] = []
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        got.append(pool.get("embedder", "key", lambda: built.append(1) or _Model()))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and len({id(m) for m in got}) == 1


def test_close_forgets_and_closes_one_kind_only() -> None:
    pool = ModelPool()
    embedder = pool.get("embedder", 1, _Model)
    generator = pool.get("generator", 1, _Model)
    pool.get("generator", 2, object)  # nothing to close: forgotten all the same
    pool.close("generator")
    assert generator.closed == 1 and embedder.closed == 0
    assert pool.members("generator") == [] and pool.members("embedder") == [embedder]
    assert pool.get("generator", 1, _Model) is not generator  # built anew after closing


def test_load_counters_per_kind_and_name() -> None:
    pool = ModelPool()
    counter = pool.load_counter("embedder")
    before = pool.loads("generator")
    pool.count_load("generator", "summarizer")
    pool.count_load("generator", "summarizer")
    pool.count_load("embedder", "bge")
    assert pool.loads_since("generator", before) == {"summarizer": 2}
    assert pool.loads_since("generator", pool.loads("generator")) == {}
    assert counter == {"bge": 1}  # the live counter (models.loading.EMBEDDER_LOADS)
    pool.close("generator")
    assert pool.loads("generator") == {"summarizer": 2}  # a process's total
