"""Rebuild and re-review a day's digest without refetching: scheduled on the Asset that the
daily DAG's enrich task emits (e.g. after a prompt change, re-enrichment, or an edit), or
triggered from the UI with a `date`. Events emitted by a ``boe_daily`` run are ignored (that
run reviews and publishes its own digest); send an asset event through the REST API or the
UI ("Materialize"/"Create event" with ``{"day": "YYYY-MM-DD"}``) after a re-enrichment.

``which_day → review → build_digest → approve → publish → deliver``; when the rebuilt draft
equals the published one, the approval is skipped and nothing new is published or sent.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from boeflow.airflow.notify import review_deadline_alert
from boeflow.airflow.wiring import ENRICHED, digest_tasks, io_retries


@dag(
    dag_id="boe_digest",
    schedule=[ENRICHED],
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Madrid"),
    catchup=False,
    max_active_runs=1,
    default_args=io_retries(),
    # Reviewers are reminded when the day is not approved by the review deadline.
    deadline=review_deadline_alert("boe_digest"),
    params={"date": Param(None, type=["null", "string"], format="date",
                          title="Fecha del BOE",
                          description="Día cuyo resumen se reconstruye (AAAA-MM-DD).")},
    tags=["boeflow", "boe", "digest"],
    doc_md=__doc__,
)
def boe_digest() -> None:
    @task
    def which_day() -> str:
        from boeflow.jobs.common import resolve_day

        context = get_current_context()
        requested = context["params"].get("date")
        if not requested:
            events = [event for asset_events in
                      (context.get("triggering_asset_events") or {}).values()
                      for event in asset_events]
            if events and all(e.source_dag_id == "boe_daily" for e in events):
                # boe_daily reviews and publishes its own digest: do not ask twice.
                raise AirflowSkipException("digest handled by the boe_daily run")
            for event in events:
                requested = (event.extra or {}).get("day") or requested
        return resolve_day(requested, None)

    digest_tasks(which_day())


boe_digest()
