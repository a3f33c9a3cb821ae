"""Daily BOE ingestion and the reviewed daily digest.

``which_day → fetch → index → enrich → review → build_digest → approve → publish → deliver``:
fetch the day's sumario and items; parse, chunk, embed and index them; summarise (ALIA),
translate to Valencian (Aitana) and review them automatically; build the draft digest; a
human approves it in the Airflow UI ("Required Actions"), excluding items or correcting
summaries; publish Markdown/HTML/JSON, boe-digests and the Atom feed; e-mail subscribers.

Runs Monday to Saturday (the BOE's publication days) at 09:00 Madrid time; trigger it from
the Airflow UI with a `date` to (re)process any day. Every step is idempotent: a rerun of a
finished day downloads nothing, computes nothing, publishes nothing new and sends no second
e-mail. A day without a BOE ends green with a "no publication" record. Each task calls one
function of ``boeflow.daily`` and records its outcome in PostgreSQL (`boeflow status`).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from boeflow.airflow.wiring import ENRICHED, digest_tasks


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
        from boeflow.daily import resolve_day

        context = get_current_context()
        logical = context.get("logical_date")
        return resolve_day(context["params"].get("date"),
                           logical.isoformat() if logical else None)

    @task
    def fetch(day: str) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import fetch_day

        return fetch_day(day, get_settings(), run_id=get_current_context().get("run_id"))

    @task
    def index(day: str, fetched: dict[str, Any]) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import index_day

        return index_day(day, get_settings(), run_id=get_current_context().get("run_id"))

    @task(outlets=[ENRICHED])
    def enrich(day: str, indexed: dict[str, Any]) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import enrich_day

        context = get_current_context()
        result = enrich_day(day, get_settings(), run_id=context.get("run_id"))
        context["outlet_events"][ENRICHED].extra = {"day": day}
        return result

    day = which_day()
    digest_tasks(day, enrich(day, index(day, fetch(day))))


boe_daily()
