"""The DAG's per-batch functions (`boeflow.jobs.index.plan_batches`, `index_batch`, `enrich_batch`,
`close_batches`) on the real Elasticsearch and PostgreSQL with the recorded BOE replayed on
loopback: batches follow the trigger form's sections and max_items; a document that cannot
be indexed is recorded and does not fail its batch; a batch that cannot run at all records
every id with one line and fails (so Airflow retries it), and the day still closes with
those items as incidencias."""

from __future__ import annotations

import json
from datetime import date

import pytest

from boeflow import jobs
from boeflow.core.settings import Settings
from boeflow.state.db import connect
from boeflow.state.records import day_status
from tests.support.digest_fixtures import replayed_settings

pytestmark = pytest.mark.integration
PREFIX = "it-batches-"
DAY = "2024-11-13"
GOOD, OTHER = "BOE-A-2024-23543", "BOE-A-2024-23620"  # sections I and III, both recorded
THIRD = "BOE-A-2024-23622"  # section III, recorded too


settings = replayed_settings(PREFIX)


def test_plan_follows_sections_and_max_items(settings: Settings) -> None:
    fetched = jobs.fetch_day(DAY, settings, ["1", "3"], max_items=5)
    # max_items bounds what is fetched: the first five items of sections I and III.
    assert fetched.items == 5
    manifest = json.loads((settings.data_dir / "raw" / "boe" / "2024" / "11" / "13" /
                           "manifest.json").read_text(encoding="utf-8"))
    assert [i["section"] for i in manifest["items"]] == ["1", "1", "1", "3", "3"]
    assert [b.to_json() for b in jobs.plan_batches(DAY, settings, sections=["1"],
                                                   batch_size=1)] == [
        {"day": DAY, "batch": 0, "ids": [GOOD], "label": GOOD}]
    # Only what was fetched is planned (the replay server has three of these documents).
    fetched = jobs.fetch_day(DAY, settings, ["1", "3"])
    plan = jobs.plan_batches(DAY, settings, sections=["1", "3"], batch_size=25)
    assert [b.ids for b in plan] == [[GOOD, OTHER, THIRD]]
    assert plan[0].label == f"{GOOD}, {OTHER}, {THIRD}"
    assert [b.ids for b in jobs.plan_batches(DAY, settings, sections=["1", "3"],
                                                 batch_size=1)] == [[GOOD], [OTHER], [THIRD]]
    assert jobs.plan_batches(DAY, settings, sections=["5"]) == []
    assert jobs.plan_batches("2024-11-10", settings) == []  # not fetched: nothing


def test_a_bad_document_does_not_fail_its_batch(settings: Settings) -> None:
    jobs.fetch_day(DAY, settings, ["1", "3"])
    item = settings.data_dir / "raw" / "boe" / "2024" / "11" / "13" / "items" / f"{OTHER}.xml"
    item.write_bytes(b"<documento><texto>")  # damaged in the store after the fetch
    result = jobs.index_batch(DAY, [GOOD, OTHER], settings, batch=0)
    assert result.indexed == [GOOD]
    assert list(result.failed) == [OTHER]
    enriched = jobs.enrich_batch(DAY, [GOOD], settings, batch=0, languages=["es"])
    assert enriched.enriched == [GOOD] and enriched.languages == ["es"]
    closed = jobs.close_batches(DAY, settings)
    assert closed.indexed == 1 and list(closed.index_failed) == [OTHER]
    with connect(settings) as conn:
        status = day_status(conn, date.fromisoformat(DAY))
    assert status is not None
    tasks = {t["task"]: t for t in status["tasks"]}
    assert tasks["index"]["status"] == "success"
    assert tasks["index"]["detail"]["failed"] == {OTHER: result.failed[OTHER]}
    assert {f["boe_id"]: f["stage"] for f in status["failures"]}[OTHER] == "index"
    built = jobs.build_digest_day(DAY, settings)
    draft = json.loads((settings.data_dir / "raw" / "digests" / "2024" / "11" / "13" / "draft" /
                        "digest.json").read_text(encoding="utf-8"))
    incidencias = {n["boe_id"]: n["stage"] for n in draft["incidencias"]}
    assert incidencias[OTHER] == "index"
    # Indexed: at most an enrich incidencia (the smoke models' summaries fail their checks).
    assert incidencias.get(GOOD) in (None, "enrich")
    assert built.needs_review is True


def test_a_batch_that_cannot_run_records_its_ids_and_fails(settings: Settings) -> None:
    jobs.fetch_day(DAY, settings, ["1", "3"])
    down = settings.model_copy(update={"es_url": "http://127.0.0.1:9"})  # nothing listens
    with pytest.raises(jobs.TaskFailed) as failure:
        jobs.index_batch(DAY, [GOOD, OTHER], down, batch=3)
    message = str(failure.value)
    assert message.startswith(f"index {DAY} batch 3 ({GOOD}, {OTHER}): ")
    assert "\n" not in message
    with connect(settings) as conn:
        rows = conn.execute("SELECT boe_id, index_status, index_error FROM documents "
                            "WHERE boe_id = ANY(%s) ORDER BY boe_id", ([GOOD, OTHER],)).fetchall()
    assert [(r["boe_id"], r["index_status"]) for r in rows] == [(GOOD, "failed"),
                                                                (OTHER, "failed")]
    # The retry that works replaces the failure.
    assert jobs.index_batch(DAY, [GOOD, OTHER], settings, batch=3).indexed == [GOOD, OTHER]
    with connect(settings) as conn:
        rows = conn.execute("SELECT index_status, index_error FROM documents "
                            "WHERE boe_id = ANY(%s)", ([GOOD, OTHER],)).fetchall()
        day = conn.execute("SELECT indexed FROM days WHERE day = %s",
                           (date.fromisoformat(DAY),)).fetchone()
    assert {(r["index_status"], r["index_error"]) for r in rows} == {("indexed", None)}
    assert day is not None and day["indexed"] == 2


def test_close_takes_the_batches_results(settings: Settings) -> None:
    """The reduce step as the DAG runs it: what each batch that ran reported is the day's
    outcome for its documents (a retried batch reports its last attempt); a batch that
    failed has no result, and its documents come from the rows it recorded."""
    jobs.fetch_day(DAY, settings, ["1", "3"])
    down = settings.model_copy(update={"es_url": "http://127.0.0.1:9"})
    with pytest.raises(jobs.TaskFailed):  # this batch's task fails: no result reaches close
        jobs.index_batch(DAY, [THIRD], down, batch=1)
    indexed = jobs.index_batch(DAY, [GOOD, OTHER], settings, batch=0)
    enriched = jobs.enrich_batch(DAY, [GOOD, OTHER], settings, batch=0, languages=["es"])
    result = enriched.model_copy(update={"index": jobs.IndexOutcome(
        indexed=indexed.indexed, failed=indexed.failed)})
    closed = jobs.close_batches(DAY, settings, results=[result])
    assert closed.indexed == 2
    assert list(closed.index_failed) == [THIRD]  # from the row its failed batch wrote
    with connect(settings) as conn:
        row = conn.execute("SELECT index_error FROM documents WHERE boe_id = %s",
                           (THIRD,)).fetchone()
    assert row is not None and closed.index_failed[THIRD] == row["index_error"]
    # A reported failure wins over nothing in the rows: the batch's word is the outcome.
    said = result.model_copy(update={"failed": {OTHER: "the batch said so"}})
    again = jobs.close_batches(DAY, settings, results=[said])
    assert again.enrich_failed == {OTHER: "the batch said so"}


def test_close_refuses_a_day_that_was_not_fetched(settings: Settings) -> None:
    with pytest.raises(jobs.TaskFailed, match="was not fetched"):
        jobs.close_batches("2024-11-14", settings)


def test_a_rerun_of_a_published_day_keeps_it_published(settings: Settings) -> None:
    """The backfill case: a published day processed again asks nothing, publishes nothing
    new, and is still published afterwards (its fetch had set it back to pending)."""
    def run_day() -> jobs.Built:
        jobs.fetch_day(DAY, settings, ["1"])
        for batch in jobs.plan_batches(DAY, settings, sections=["1"]):
            jobs.index_batch(DAY, batch.ids, settings, batch.batch)
            jobs.enrich_batch(DAY, batch.ids, settings, batch.batch, languages=["es"])
        jobs.close_batches(DAY, settings)
        return jobs.build_digest_day(DAY, settings)

    built = run_day()
    assert built.needs_review is True
    review = {"decision": "approved", "reviewer": "revisora",
              "draft_hash": built.draft_hash}
    assert jobs.publish_day(DAY, settings, review).version == 1
    again = run_day()
    assert again.needs_review is False and again.already_published is True
    assert jobs.publish_day(DAY, settings, None).reason == "already_published"
    with connect(settings) as conn:
        status = day_status(conn, date.fromisoformat(DAY))
    assert status is not None
    assert status["day"]["status"] == "published"
    assert status["day"]["digest_status"] == "published"
    assert [d["version"] for d in status["digests"]] == [1]
