"""One owner per resource, counted on the real services: each step of the day opens at most
one PostgreSQL connection and one Elasticsearch client (``jobs.common.owns_resources``),
a process loads each model once whatever the number of batches (the embedder included),
and the indices are set up once per process, not once per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from boeflow import jobs
from boeflow.core.settings import Settings
from boeflow.enrich.backends import clear_backends, loads_since, model_loads
from boeflow.index import client as es_client
from boeflow.index.embed import close_embedders
from boeflow.models.loading import EMBEDDER_LOADS
from boeflow.state import db
from tests.support.digest_fixtures import replayed_settings

pytestmark = pytest.mark.integration
PREFIX = "it-resources-"
DAY = "2024-11-13"
GOOD, OTHER, THIRD = "BOE-A-2024-23543", "BOE-A-2024-23620", "BOE-A-2024-23622"


settings = replayed_settings(PREFIX)


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Connections and clients opened, and index setups run, counted at their one source."""
    counts: Counter[str] = Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(db, "connect", counting("postgresql", db.connect))
    monkeypatch.setattr(es_client, "get_client", counting("elasticsearch", es_client.get_client))
    monkeypatch.setattr(es_client, "setup_indices",
                        counting("setup_indices", es_client.setup_indices))
    return counts


def _step(counts: Counter[str], run: Callable[[], Any]) -> dict[str, int]:
    counts.clear()
    run()
    return {"postgresql": counts["postgresql"], "elasticsearch": counts["elasticsearch"]}


def test_each_step_opens_one_connection_and_one_client(settings: Settings,
                                                       opened: Counter[str]) -> None:
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("fetch", lambda: jobs.fetch_day(DAY, settings, ["1", "3"])),
        ("plan", lambda: jobs.plan_batches(DAY, settings, sections=["1", "3"])),
        ("index", lambda: jobs.index_batch(DAY, [GOOD, OTHER, THIRD], settings, batch=0)),
        ("enrich", lambda: jobs.enrich_batch(DAY, [GOOD], settings, batch=0,
                                             languages=["es"])),
        ("close", lambda: jobs.close_batches(DAY, settings)),
        ("build_digest", lambda: jobs.build_digest_day(DAY, settings)),
        ("publish", lambda: jobs.publish_day(DAY, settings, None)),
        ("deliver", lambda: jobs.deliver_day(DAY, settings, lambda mail: None)),
    ]
    counted = {name: _step(opened, run) for name, run in steps}
    assert counted["close"]["postgresql"] == 1  # it records two tasks and runs the review
    assert counted["build_digest"] == {"postgresql": 1, "elasticsearch": 1}
    assert {name: c for name, c in counted.items()
            if c["postgresql"] > 1 or c["elasticsearch"] > 1} == {}, counted


def test_one_model_load_per_role_and_one_index_setup_per_process(
        settings: Settings, opened: Counter[str]) -> None:
    close_embedders()
    clear_backends()
    jobs.fetch_day(DAY, settings, ["1", "3"])
    embedder_loads = sum(EMBEDDER_LOADS.values())
    generators = model_loads()
    opened.clear()
    for batch, ids in enumerate([[GOOD], [OTHER], [THIRD]]):
        jobs.index_batch(DAY, ids, settings, batch=batch)
        jobs.enrich_batch(DAY, ids, settings, batch=batch, languages=["es"])
    assert sum(EMBEDDER_LOADS.values()) - embedder_loads == 1
    loads = loads_since(generators)
    assert loads.get("summarizer") == 1 and all(n == 1 for n in loads.values()), loads
    assert opened["setup_indices"] == 1
    # The next process-level user of the embedder (a search) reuses it too.
    from boeflow.index.embed import shared_embedder

    shared_embedder(settings).embed(["plazo de presentación de solicitudes"])
    assert sum(EMBEDDER_LOADS.values()) - embedder_loads == 1
