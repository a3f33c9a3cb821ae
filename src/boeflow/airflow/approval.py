"""Airflow glue for the human approval of the daily digest (Airflow 3.1+ human-in-the-loop).

``DigestApproval`` is a ``HITLOperator`` shown in the Airflow UI under "Required Actions": its
Markdown body (rendered from the ``build_digest`` task's result) gives the day's counts and
every item flagged by the automatic review; its form lets the reviewer publish or reject,
exclude items by BOE id, correct summary texts and leave notes.

When the step starts, ``ReviewRequestNotifier`` tells the reviewers
(``BOEFLOW_DIGEST_REVIEWERS`` by e-mail, an Apprise channel if configured) with the link to the
run's "Borrador" tab (the workbench plugin), where the draft is reviewed item by item.

Timeout (``BOEFLOW_DIGEST_REVIEW_TIMEOUT_HOURS``): Airflow applies the step's defaults when
nobody answers in time. The default option is *Rechazar*, so nothing is published without a
human and the day stays pending (decision ``timed_out``); with
``BOEFLOW_DIGEST_PUBLISH_ON_TIMEOUT=true`` the default is *Publicar* and the digest is
published marked "publicado sin revisión" (decision ``without_review``).

The answer names the draft it approves: the form's ``draft_hash`` is prefilled with the hash
of the draft the task shows. When the answer arrives it is validated against the draft on
disk (``boeflow.digest.decision.validate_decision``): a stale hash, an id that is not an
item of the draft, a bad correction key or an over-long text fails this task with one line
(nothing is published; clear the task to ask again), and the publish task validates again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from boeflow.airflow.connections import task_settings
from boeflow.airflow.notify import ReviewRequestNotifier
from boeflow.core.settings import Settings, get_settings
from boeflow.digest.decision import PUBLISH, REJECT
from boeflow.jobs.publish import APPROVAL_OPTIONS

BUILD_TASK = "build_digest"

# Every field is optional: a reviewer who only clicks "Publicar" publishes the draft as is.
FORM = {
    "excluir": Param([], type=["null", "array"], items={"type": "string"},
                     title="Excluir elementos",
                     description="Identificadores BOE que no se publican (uno por línea)."),
    "correcciones": Param({}, type=["null", "object"], title="Corregir resúmenes",
                          description='{"BOE-A-…": "resumen corregido"}; "BOE-A-…:va" para el '
                          "valenciano. Se revisan de nuevo automáticamente."),
    "notas": Param({}, type=["null", "object"], title="Notas por elemento",
                   description='{"BOE-A-…": "nota del revisor"}'),
    "nota": Param(None, type=["null", "string"], title="Nota general",
                  description="Se muestra en el resumen publicado."),
    "draft_hash": Param(None, type=["null", "string"], title="Borrador revisado",
                        description="Huella del borrador que se muestra (no la cambie): si el "
                        "borrador cambia, esta respuesta se rechaza."),
}


class DigestApproval(HITLOperator):  # type: ignore[misc]
    """Ask a reviewer to approve the day's draft digest; skipped when there is nothing to
    review (no BOE that day, or this exact draft is already published)."""

    def __init__(self, *, day: str, **kwargs: Any) -> None:
        settings = get_settings()
        kwargs.setdefault("subject", f"Revisar el resumen del BOE del {day}")
        kwargs.setdefault(
            "body", "{{ (ti.xcom_pull(task_ids='" + BUILD_TASK + "') or {}).get("
            "'review_body', 'Sin borrador') }}")
        kwargs.pop("params", None)  # the DAG's own params do not belong in this form
        # Reviewers are told that the day waits (e-mail, Apprise), with the Borrador link.
        kwargs.setdefault("notifiers", [ReviewRequestNotifier(day)])
        super().__init__(
            options=list(APPROVAL_OPTIONS),
            defaults=[PUBLISH if settings.digest_publish_on_timeout else REJECT],
            multiple=False, params=dict(FORM),
            response_timeout=timedelta(hours=settings.digest_review_timeout_hours),
            **kwargs)
        self.day = day

    template_fields = (*HITLOperator.template_fields, "day")

    def execute(self, context: Any) -> Any:
        from boeflow.jobs.publish import record_approval_skipped

        built = context["ti"].xcom_pull(task_ids=BUILD_TASK) or {}
        if not built.get("needs_review"):
            reason = ("no_publication" if built.get("status") == "no_publication"
                      else "already_published" if built.get("already_published")
                      else "nothing_to_review")
            record_approval_skipped(self.day, task_settings(), reason, context.get("run_id"))
            raise AirflowSkipException(f"nothing to review for {self.day}: {reason}")
        # The form names the draft this task shows.
        self.params["draft_hash"] = Param(
            built.get("draft_hash"), type=["null", "string"],
            title=FORM["draft_hash"].schema.get("title"),
            description=FORM["draft_hash"].description)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from datetime import date

        from boeflow.digest.decision import DecisionError, validate_decision
        from boeflow.digest.publish import read_digest
        from boeflow.jobs.common import TaskFailed
        from boeflow.jobs.publish import review_from_hitl
        from boeflow.state.db import state
        from boeflow.state.records import record_task

        result = super().execute_complete(context, event)
        user = result.get("responded_by_user") or {}
        settings = task_settings()
        when = date.fromisoformat(self.day)
        detail = {"chosen": result.get("chosen_options"), "reviewer": user.get("name"),
                  "responded_at": str(result.get("responded_at"))}
        error = None
        try:
            built = context["ti"].xcom_pull(task_ids=BUILD_TASK) or {}
            answer = review_from_hitl(result, settings.digest_publish_on_timeout,
                                      built.get("draft_hash"))
            draft = read_digest(_store(settings), when, draft=True)
            if draft is None:
                raise DecisionError(f"no draft digest for {self.day}")
            if answer is not None:
                detail["draft_hash"] = validate_decision(draft, answer).draft_hash
        except (DecisionError, TaskFailed) as exc:
            error = f"decision on {self.day} refused: {exc}"
        with state(settings) as conn:
            record_task(conn, when, "approve", "failed" if error else "success",
                        detail=detail, error=error, run_id=context.get("run_id"))
        if error:
            raise TaskFailed(error)
        return result


def _store(settings: Settings) -> Any:
    from boeflow.boe.store import RawStore, store_url

    return RawStore(store_url(settings))
