"""The process's one pool of models: every embedder and generator is built once per process
and parameter set, shared by every later batch, search and digest, counted when its weights
load, and closed together at the end of the process (or of a test).

The pool knows nothing of what it holds: callers (``boeflow.index.embed.shared_embedder``,
``boeflow.enrich.backends.get_backend``) pass a kind, a key and a factory, and count the
loads themselves when the weights really load (their objects load lazily).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

EMBEDDER = "embedder"
GENERATOR = "generator"


class ModelPool:
    """Objects keyed by (kind, key), each built by its factory on first request."""

    def __init__(self) -> None:
        self._members: dict[tuple[str, Hashable], Any] = {}
        self._loads: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: Hashable, factory: Callable[[], T]) -> T:
        """The shared object of ``kind`` for ``key``, built by ``factory`` the first time."""
        with self._lock:
            member = self._members.get((kind, key))
            if member is None:
                member = self._members[kind, key] = factory()
            return cast(T, member)

    def members(self, kind: str) -> list[Any]:
        """The shared objects of ``kind`` now in the pool."""
        with self._lock:
            return [m for (k, _), m in self._members.items() if k == kind]

    def close(self, kind: str) -> None:
        """Forget every object of ``kind`` and close each that has a ``close`` method (outside
        the lock: closing may take time)."""
        with self._lock:
            keys = [key for key in self._members if key[0] == kind]
            closing = [self._members.pop(key) for key in keys]
        for member in closing:
            close = getattr(member, "close", None)
            if close is not None:
                close()

    def load_counter(self, kind: str) -> Counter[str]:
        """The live count of loads of ``kind``, per role or model (never reset: a process's
        total)."""
        with self._lock:
            return self._loads.setdefault(kind, Counter())

    def count_load(self, kind: str, name: str) -> None:
        with self._lock:
            self._loads.setdefault(kind, Counter())[name] += 1

    def loads(self, kind: str) -> dict[str, int]:
        """Loads of ``kind`` made in this process so far, per role or model."""
        return dict(self.load_counter(kind))

    def loads_since(self, kind: str, before: dict[str, int]) -> dict[str, int]:
        """The loads of ``kind`` made since ``before`` (a ``loads`` result), nonzero only."""
        return counts_since(self.loads(kind), before)


def counts_since(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What a per-name count grew by from ``before`` to ``now``, nonzero only."""
    return {name: n - before.get(name, 0) for name, n in now.items() if n - before.get(name, 0)}


POOL = ModelPool()
