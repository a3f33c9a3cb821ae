"""Airflow glue for digest e-mails: a notifier that sends one prepared message through the
SMTP server of an Airflow Connection (host, port, login, TLS/SSL extras; default id
``boeflow_smtp``, ``BOEFLOW_DIGEST_SMTP_CONN_ID``)."""

from __future__ import annotations

from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.sdk import BaseNotifier

from boeflow.digest.mail import OutgoingMail


class DigestMailNotifier(BaseNotifier):  # type: ignore[misc]
    """Send one ``OutgoingMail`` (text + HTML alternative) via the SMTP Connection."""

    template_fields = ()

    def __init__(self, mail: OutgoingMail, sender: str, smtp_conn_id: str) -> None:
        super().__init__()
        self.mail = mail
        self.sender = sender
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Any) -> None:
        with SmtpHook(smtp_conn_id=self.smtp_conn_id) as hook:
            client = hook._smtp_client  # opened by the hook from the Connection
            if client is None:
                raise RuntimeError(f"SMTP connection {self.smtp_conn_id} did not open")
            client.send_message(self.mail.message(self.sender),
                                from_addr=self.sender, to_addrs=self.mail.recipients)


def smtp_sender(smtp_conn_id: str, sender: str, context: Any) -> Any:
    """A ``boeflow.jobs.deliver.deliver_day`` sender backed by ``DigestMailNotifier``."""

    def send(mail: OutgoingMail) -> None:
        DigestMailNotifier(mail, sender, smtp_conn_id).notify(context)

    return send


# --- reviewers: the approval starts, the review deadline passes ------------------------------

def _ui_base(settings: Any) -> str:
    if settings.digest_workbench_url:
        return str(settings.digest_workbench_url)
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "http://localhost:8080")


def _send_apprise(conn_id: str, title: str, body: str) -> None:
    try:
        from airflow.providers.apprise.hooks.apprise import AppriseHook
    except ImportError:
        raise RuntimeError(f"BOEFLOW_DIGEST_REVIEW_APPRISE_CONN_ID={conn_id} needs "
                           "apache-airflow-providers-apprise") from None
    AppriseHook(apprise_conn_id=conn_id).notify(title=title, body=body)


class ReviewRequestNotifier(BaseNotifier):  # type: ignore[misc]
    """The approval step's notifier: tell the reviewers (e-mail through the SMTP Connection,
    and the Apprise channel if one is configured) that the day's draft waits for them, with
    the link to the run's "Borrador" tab."""

    template_fields = ("day",)

    def __init__(self, day: str) -> None:
        super().__init__()
        self.day = day

    def notify(self, context: Any) -> None:
        from boeflow.airflow.connections import task_settings
        from boeflow.workbench.notice import borrador_url, review_request

        settings = task_settings()
        built = context["ti"].xcom_pull(task_ids="build_digest") or {}
        url = borrador_url(_ui_base(settings), context["dag"].dag_id, context["run_id"])
        mail = review_request(self.day, url, list(settings.digest_reviewers),
                              built.get("items"), len(built.get("needs_attention") or []))
        if mail.recipients:
            DigestMailNotifier(mail, settings.digest_mail_from,
                               settings.digest_smtp_conn_id).notify(context)
        if settings.digest_review_apprise_conn_id:
            _send_apprise(settings.digest_review_apprise_conn_id, mail.subject, mail.text)


def review_deadline_alert(dag_id: str) -> Any:
    """The DAG's Deadline Alert: when a run is not finished (i.e. its digest is not approved
    and published) by the review deadline (``BOEFLOW_DIGEST_REVIEW_DEADLINE``), remind the
    reviewers. None (no alert) when the deadline is ``off``."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    from boeflow.core.settings import get_settings
    from boeflow.workbench.notice import deadline_interval

    deadline = get_settings().digest_review_deadline
    if deadline == "off":
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                         interval=deadline_interval(deadline),
                         callback=AsyncCallback(remind_reviewers,
                                                kwargs={"dag_id": dag_id,
                                                        "deadline": deadline}),
                         name="revision-del-resumen")


async def remind_reviewers(dag_id: str, deadline: str, context: Any = None,
                           **_: Any) -> None:
    """Deadline callback (runs in the triggerer): the reminder e-mail (and Apprise)."""
    import asyncio

    await asyncio.to_thread(_remind, dag_id, deadline, context or {})


def _remind(dag_id: str, deadline: str, context: Any) -> None:
    from boeflow.core.settings import get_settings
    from boeflow.workbench.notice import borrador_url, review_reminder

    settings = get_settings()
    run = context.get("dag_run") or {}

    def get(key: str) -> Any:
        return run.get(key) if isinstance(run, dict) else getattr(run, key, None)

    run_id = str(get("run_id") or context.get("run_id") or "")
    conf = get("conf") or {}
    logical = get("logical_date") or get("run_after")
    day = str(conf.get("date") or (str(logical)[:10] if logical else "?"))
    mail = review_reminder(day, borrador_url(_ui_base(settings), dag_id, run_id),
                           list(settings.digest_reviewers), deadline)
    if mail.recipients:
        DigestMailNotifier(mail, settings.digest_mail_from,
                           settings.digest_smtp_conn_id).notify(context)
    if settings.digest_review_apprise_conn_id:
        _send_apprise(settings.digest_review_apprise_conn_id, mail.subject, mail.text)
