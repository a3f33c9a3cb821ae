"""The digest half of the daily DAGs — ``review → build_digest → approve → publish →
deliver`` — wired once for ``boe_daily`` and ``boe_digest``. Each task only calls the plain
function of ``boeflow.daily`` with the worker's settings and plain JSON values."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, XComArg, get_current_context, task

from boeflow.airflow.approval import DigestApproval

# Emitted by the enrich task (extra: {"day": "YYYY-MM-DD"}); schedules boe_digest.
ENRICHED = Asset("boeflow://boe-documents/enriched", group="boeflow")


def _run_id() -> str | None:
    return str(get_current_context().get("run_id") or "") or None


def digest_tasks(day: XComArg, upstream: XComArg | None = None) -> XComArg:
    """Wire review → build_digest → approve → publish → deliver after ``upstream``."""

    @task
    def review(day: str, enriched: dict[str, Any] | None = None) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import review_day

        return review_day(day, get_settings(), _run_id(), enriched)

    @task
    def build_digest(day: str, reviewed: dict[str, Any]) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import build_digest_day

        return build_digest_day(day, get_settings(), _run_id())

    @task(trigger_rule="none_failed_min_one_success")  # type: ignore[untyped-decorator]
    def publish(day: str) -> dict[str, Any]:
        from boeflow.config import get_settings
        from boeflow.daily import publish_day, review_from_hitl

        settings = get_settings()
        context = get_current_context()
        response = context["ti"].xcom_pull(task_ids="approve")
        review_input = review_from_hitl(response, settings.digest_publish_on_timeout)
        user = (response or {}).get("responded_by_user") or {}
        return publish_day(day, settings, review_input, _run_id(),
                           reviewer_id=str(user["id"]) if user.get("id") else None)

    @task(retries=3, retry_delay=pendulum.duration(minutes=2),  # type: ignore[untyped-decorator]
          retry_exponential_backoff=True, trigger_rule="none_failed_min_one_success")
    def deliver(day: str, published: dict[str, Any]) -> dict[str, Any]:
        from boeflow.airflow.notify import smtp_sender
        from boeflow.config import get_settings
        from boeflow.daily import deliver_day

        settings = get_settings()
        send = smtp_sender(settings.digest_smtp_conn_id, settings.digest_mail_from,
                           get_current_context())
        return deliver_day(day, settings, send, _run_id())

    reviewed = review(day, upstream)
    built = build_digest(day, reviewed)
    approve = DigestApproval(task_id="approve", day="{{ ti.xcom_pull(task_ids='which_day') }}")
    published = publish(day)
    built >> approve >> published
    return deliver(day, published)
