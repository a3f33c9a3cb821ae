"""The steps' typed results (``boeflow.jobs.results``): their JSON form is what XCom, the CLI's
``--json`` and the ``task_runs`` detail have always carried, and it reads back unchanged."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from boeflow.jobs.results import (
    Batch,
    EnrichedBatch,
    IndexedBatch,
    IndexedDay,
    IndexOutcome,
    Published,
)


def test_the_json_form_holds_the_fields_a_step_set_and_no_defaults() -> None:
    assert IndexedDay(day="2024-11-10", documents=0, note="no publication").to_json() == {
        "day": "2024-11-10", "documents": 0, "note": "no publication"}
    refused = Published(day="2024-11-13", published=False, reason="not_reviewed", version=None)
    assert refused.to_json() == {"day": "2024-11-13", "published": False,
                                 "reason": "not_reviewed", "version": None}
    # a field set later (``boeflow digest approve`` adds what it delivered) is part of it
    refused.delivery = None
    assert "delivery" in refused.to_json()


def test_a_result_survives_its_trip_through_xcom() -> None:
    """The DAG's enrich task hands its result (with its index task's outcome) to the reduce
    step as JSON; read back, it is the same result."""
    batch = EnrichedBatch(day="2024-11-13", batch=2, ids=["BOE-A-2024-23543"],
                          languages=["es", "va"], enriched=["BOE-A-2024-23543"],
                          model_loads={"summarizer": 1}, peak_rss_mib=812.5,
                          index=IndexOutcome(indexed=["BOE-A-2024-23543"], failed={}))
    carried = json.loads(json.dumps(batch.to_json()))
    assert EnrichedBatch.model_validate(carried) == batch
    assert Batch.model_validate(Batch(day="2024-11-13", batch=0, ids=["X"], label="X")
                                .to_json()).label == "X"


def test_a_misspelt_field_is_refused_where_it_is_set() -> None:
    with pytest.raises(ValidationError, match="indexd"):
        IndexedBatch.model_validate({"day": "2024-11-13", "indexd": []})
    with pytest.raises(ValidationError, match="published"):
        Published.model_validate({"day": "2024-11-13", "published": "perhaps"})
