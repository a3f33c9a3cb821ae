"""The daily DAGs' shared wiring: the trigger form (Params), retries, the LLM pool, the
settings every task uses (Airflow Connections over ``BOEFLOW_*``) and the digest half —
``review → build_digest → approve → publish → deliver`` — wired once for ``boe_daily`` and
``boe_digest``. Each task only calls the plain function of ``boeflow.jobs`` with the task's
settings; the steps' typed results (``boeflow.jobs.results``) become JSON for XCom here, at
the edge (``to_json``), and are read back (``model_validate``) by the task that takes them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param, XComArg, get_current_context, task

from boeflow.airflow.approval import DigestApproval
from boeflow.airflow.pools import LLM_POOL
from boeflow.core.sections import SECTION_CODES, SECTIONS
from boeflow.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from boeflow.jobs.results import Batch, EnrichedBatch

__all__ = ["BATCH_NAME", "ENRICHED", "LLM_POOL", "TRIGGER_PARAMS", "digest_tasks",
           "io_retries", "name_batch", "run_id", "settings"]

# Emitted by the enrich task (extra: {"day": "YYYY-MM-DD"}); schedules boe_digest.
ENRICHED = Asset("boeflow://boe-documents/enriched", group="boeflow")

SECTION_NAMES = {section.code: section.name for section in SECTIONS}
LANGUAGE_NAMES = {"es": "Castellano (resumen)", "va": "Valenciano (traducción del resumen)"}

# The trigger form of boe_daily. Airflow validates a run's conf against this JSON schema when
# the run is created (UI form, REST API, CLI): a date that does not exist or an unknown
# section is refused there, before any task runs.
TRIGGER_PARAMS: dict[str, Param] = {
    "date": Param(
        None, type=["null", "string"], format="date", title="Fecha del BOE",
        description="Día que se procesa (AAAA-MM-DD). Vacío: el día de la ejecución "
        "programada (de lunes a sábado a las 09:00, hora de Madrid)."),
    "sections": Param(
        None, type=["null", "array"], items={"type": "string", "enum": list(SECTION_CODES)},
        uniqueItems=True,
        examples=list(SECTION_CODES), values_display=SECTION_NAMES, title="Secciones",
        description="Secciones del BOE que se procesan. Ninguna: todas."),
    "force": Param(
        False, type="boolean", title="Forzar",
        description="Descargar e indexar de nuevo los documentos y volver a generar "
        "resúmenes y traducciones aunque ya existan."),
    "languages": Param(
        ["es", "va"], type="array", items={"type": "string", "enum": list(LANGUAGE_NAMES)},
        uniqueItems=True, minItems=1, contains={"const": "es"}, examples=list(LANGUAGE_NAMES),
        values_display=LANGUAGE_NAMES, title="Idiomas",
        description="Idiomas del resumen: el castellano siempre; el valenciano añade la "
        "traducción (Aitana)."),
    "max_items": Param(
        None, type=["null", "integer"], minimum=1, maximum=20000,
        title="Máximo de elementos",
        description="Procesar como mucho este número de elementos del sumario, en su orden "
        "(para pruebas). Vacío: todos."),
}


def io_retries() -> dict[str, Any]:
    """``default_args`` of the DAGs: retries with exponential backoff (from the settings)."""
    s = get_settings()
    return {"retries": s.airflow_retries,
            "retry_delay": timedelta(seconds=s.airflow_retry_delay_s),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(seconds=s.airflow_retry_max_delay_s)}


def settings() -> Settings:
    """The running task's settings: Airflow Connections over the ``BOEFLOW_*`` settings."""
    from boeflow.airflow.connections import task_settings

    return task_settings()


# A mapped batch task's name in the grid: the BOE ids of its batch (set by name_batch).
BATCH_NAME = "{{ boe_ids }}"


def name_batch(batch: dict[str, Any]) -> tuple[Batch, Any]:
    """The mapped task's batch (its XCom form read back), and the running task's context,
    once the task is given its name (``BATCH_NAME``)."""
    from boeflow.jobs.results import Batch

    planned = Batch.model_validate(batch)
    context = get_current_context()
    context["boe_ids"] = planned.label
    return planned, context


def run_id() -> str | None:
    return str(get_current_context().get("run_id") or "") or None


_run_id = run_id


def batch_results(pulled: Any) -> list[EnrichedBatch]:
    """The mapped batches' results as Airflow hands them to the reduce step (a lazy list of
    the batches that succeeded, the one result itself when a single batch was mapped, or
    None when none succeeded), read back into the enrich step's results."""
    from boeflow.jobs.results import EnrichedBatch

    if pulled is None:
        return []
    if isinstance(pulled, dict):
        pulled = [pulled]
    return [EnrichedBatch.model_validate(result) for result in pulled if result]


def digest_tasks(day: XComArg, upstream: Any = None, *, after_batches: bool = False
                 ) -> XComArg:
    """Wire review → build_digest → approve → publish → deliver after ``upstream``; with
    ``after_batches`` the review runs whatever the batches' outcome (a failed batch is in
    the digest's incidencias, it does not stop the day)."""

    if after_batches:
        @task(trigger_rule="all_done")  # type: ignore[untyped-decorator]
        def review(day: str, batches: Any) -> dict[str, Any]:
            """The reduce step: takes the mapped batches' results (a failed batch has none)."""
            from boeflow.jobs.enrich import close_batches

            return close_batches(day, settings(), _run_id(), batch_results(batches)).to_json()

        reviewed = review(day, upstream)
    else:
        @task
        def review(day: str) -> dict[str, Any]:
            from boeflow.jobs.review import review_day

            return review_day(day, settings(), _run_id()).to_json()

        reviewed = review(day)

    @task
    def build_digest(day: str, reviewed: dict[str, Any]) -> dict[str, Any]:
        from boeflow.jobs.digest import build_digest_day

        return build_digest_day(day, settings(), _run_id()).to_json()

    @task(trigger_rule="none_failed_min_one_success")  # type: ignore[untyped-decorator]
    def publish(day: str, response: dict[str, Any] | None,
                built: dict[str, Any] | None) -> dict[str, Any]:
        """``response``: the approval's answer (``approve.output``; None when it had nothing
        to ask); ``built``: the draft it answered (``build_digest``'s result)."""
        from boeflow.jobs.publish import publish_day, review_from_hitl
        from boeflow.jobs.results import Built

        task_settings = settings()
        shown = Built.model_validate(built).draft_hash if built else None
        review_input = review_from_hitl(response, task_settings.digest_publish_on_timeout,
                                        shown)
        user = (response or {}).get("responded_by_user") or {}
        return publish_day(day, task_settings, review_input, _run_id(),
                           reviewer_id=str(user["id"]) if user.get("id") else None).to_json()

    @task(trigger_rule="none_failed_min_one_success")  # type: ignore[untyped-decorator]
    def deliver(day: str, published: dict[str, Any]) -> dict[str, Any]:
        from boeflow.airflow.notify import smtp_sender
        from boeflow.jobs.deliver import deliver_day

        task_settings = settings()
        send = smtp_sender(task_settings.digest_smtp_conn_id, task_settings.digest_mail_from,
                           get_current_context())
        return deliver_day(day, task_settings, send, _run_id()).to_json()

    built = build_digest(day, reviewed)
    approve = DigestApproval(task_id="approve", day="{{ ti.xcom_pull(task_ids='which_day') }}")
    built >> approve
    published = publish(day, approve.output, built)
    return deliver(day, published)
