"""Daily BOE ingestion and the reviewed daily digest.

``which_day → fetch → plan → lote[n].index → lote[n].enrich → review → build_digest → approve
→ publish → deliver``: fetch the day's sumario and items; plan batches of the fetched items;
per batch (dynamic task mapping, named by its BOE ids) parse, chunk, embed and index, then
summarise (ALIA), translate to Valencian (Aitana) and review automatically — GPU/LLM work in
the ``boeflow_llm`` pool; build the draft digest; a human approves it in the Airflow UI
("Required Actions"), excluding items or correcting summaries; publish Markdown/HTML/JSON,
boe-digests and the Atom feed; e-mail subscribers.

Runs Monday to Saturday (the BOE's publication days) at 09:00 Madrid time. Trigger it from
the UI to (re)process a day: the form asks for the date, the sections, whether to force a
new download and generation, the languages and a maximum number of items; invalid input is
refused by the form. A backfill (``airflow backfill create --dag-id boe_daily --from-date
… --to-date …``) processes each publication day once. Every step is idempotent: a rerun of a
finished day downloads nothing, computes nothing, publishes nothing new and sends no second
e-mail. A day without a BOE ends green with a "no publication" record; an item (or a whole
batch) that fails is listed in the digest's incidencias and never fails the day. Each task
calls one function of ``boeflow.jobs``, with settings from Airflow Connections, and records
its outcome in PostgreSQL (``boeflow status``).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task, task_group
from airflow.timetables.trigger import CronTriggerTimetable

from boeflow.airflow.notify import review_deadline_alert
from boeflow.airflow.wiring import (
    BATCH_NAME,
    ENRICHED,
    LLM_POOL,
    TRIGGER_PARAMS,
    digest_tasks,
    io_retries,
    name_batch,
    run_id,
    settings,
)


@dag(
    dag_id="boe_daily",
    dag_display_name="BOE diario: ingesta, resúmenes y revisión",
    # The BOE publishes Monday to Saturday; the run of a day starts at 09:00 Madrid time and
    # its logical date is that day.
    schedule=CronTriggerTimetable("0 9 * * 1-6", timezone="Europe/Madrid"),
    # Early start so that any BOE day can be (re)processed from the UI or a backfill.
    start_date=pendulum.datetime(1960, 1, 1, tz="Europe/Madrid"),
    catchup=False,
    max_active_runs=1,
    default_args=io_retries(),
    # Reviewers are reminded when the day is not approved by the review deadline.
    deadline=review_deadline_alert("boe_daily"),
    params=TRIGGER_PARAMS,
    tags=["boeflow", "boe"],
    doc_md=__doc__,
)
def boe_daily() -> None:
    @task
    def which_day() -> str:
        from boeflow.jobs.common import resolve_day

        context = get_current_context()
        when = context.get("logical_date") or context["dag_run"].run_after
        return resolve_day(context["params"].get("date"), when.isoformat() if when else None)

    @task
    def fetch(day: str) -> dict[str, Any]:
        from boeflow.jobs.fetch import fetch_day

        params = get_current_context()["params"]
        return fetch_day(day, settings(), params.get("sections") or None, run_id(),
                         force=bool(params.get("force")),
                         max_items=params.get("max_items")).to_json()

    @task
    def plan(day: str, fetched: dict[str, Any]) -> list[dict[str, Any]]:
        from boeflow.jobs.index import plan_batches

        params = get_current_context()["params"]
        return [planned.to_json() for planned in plan_batches(
            day, settings(), sections=params.get("sections") or None,
            max_items=params.get("max_items"))]

    # Each batch's tasks are named in the grid by the BOE ids they work on.
    @task_group(group_id="lote")
    def lote(batch: dict[str, Any]) -> Any:
        @task(pool=LLM_POOL, map_index_template=BATCH_NAME)
        def index(batch: dict[str, Any]) -> dict[str, Any]:
            from boeflow.jobs.index import index_batch

            planned, context = name_batch(batch)
            return index_batch(planned.day, planned.ids, settings(), planned.batch,
                               force=bool(context["params"].get("force"))).to_json()

        @task(pool=LLM_POOL, outlets=[ENRICHED], map_index_template=BATCH_NAME)
        def enrich(batch: dict[str, Any], indexed: dict[str, Any]) -> dict[str, Any]:
            from boeflow.jobs.enrich import enrich_batch
            from boeflow.jobs.results import IndexOutcome

            planned, context = name_batch(batch)
            params = context["params"]
            result = enrich_batch(planned.day, planned.ids, settings(), planned.batch,
                                  languages=params.get("languages"),
                                  force=bool(params.get("force")))
            context["outlet_events"][ENRICHED].extra = {"day": planned.day}
            # The batch's whole outcome, for the day's close (the reduce step).
            index_outcome = IndexOutcome.model_validate(
                {k: indexed.get(k) for k in ("indexed", "failed")})
            return result.model_copy(update={"index": index_outcome}).to_json()

        return enrich(batch, index(batch))

    day = which_day()
    batches = plan(day, fetch(day))
    digest_tasks(day, lote.expand(batch=batches), after_batches=True)


boe_daily()
