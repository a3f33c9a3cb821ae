"""Daily BOE ingestion: fetch the day's sumario and items; parse, chunk, embed and index
them; then summarise (ALIA), translate to Valencian (Aitana) and review them automatically.

Runs Monday to Saturday (the BOE's publication days) at 09:00 Madrid time; trigger it from
the Airflow UI with a `date` to (re)process any day: every step is idempotent, so a rerun
of a finished day downloads nothing and computes no embeddings.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="boe_daily",
    schedule="0 9 * * 1-6",
    # Early start so that any BOE day can be (re)processed from the UI or a backfill.
    start_date=pendulum.datetime(1960, 1, 1, tz="Europe/Madrid"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": pendulum.duration(minutes=10),
                  "retry_exponential_backoff": True},
    params={"date": Param(None, type=["null", "string"], format="date",
                          title="BOE date", description="Day to process (default: run date)")},
    tags=["boeflow", "boe"],
    doc_md=__doc__,
)
def boe_daily() -> None:
    @task
    def which_day() -> str:
        from boeflow.airflow.tasks import resolve_day

        context = get_current_context()
        logical = context.get("logical_date")
        return resolve_day(context["params"].get("date"),
                           logical.isoformat() if logical else None)

    @task
    def fetch(day: str) -> dict[str, object]:
        from boeflow.airflow.tasks import fetch_day

        return fetch_day(day)

    @task
    def index(day: str, fetched: dict[str, object]) -> dict[str, object]:
        from boeflow.airflow.tasks import index_day

        return index_day(day)

    @task
    def enrich(day: str, indexed: dict[str, object]) -> dict[str, object]:
        from boeflow.airflow.tasks import enrich_day

        return enrich_day(day)

    day = which_day()
    enrich(day, index(day, fetch(day)))


boe_daily()
