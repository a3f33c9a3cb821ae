"""What reviewers are told: that a day's draft waits for them (when the approval step starts)
and, at the review deadline, that it is still not approved — each with the link to the run's
"Borrador" tab. Plain functions; the Airflow notifiers are in ``boeflow.airflow.notify``."""

from __future__ import annotations

from datetime import timedelta
from html import escape
from urllib.parse import quote

from boeflow.digest.mail import OutgoingMail

SCHEDULED_START = (9, 0)  # boe_daily runs at 09:00 Madrid time (dags/boe_daily.py)


def borrador_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The run's "Borrador" tab in the Airflow UI (the plugin's external view)."""
    return (f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/"
            f"{quote(run_id, safe='')}/plugin/borrador")


def deadline_interval(deadline: str) -> timedelta:
    """The review deadline (``HH:MM`` Madrid time on the day, or ``+SECONDS``) as the interval
    after the run is queued (a scheduled run is queued at 09:00)."""
    if deadline.startswith("+"):
        return timedelta(seconds=int(deadline[1:]))
    hours, minutes = (int(part) for part in deadline.split(":"))
    interval = timedelta(hours=hours - SCHEDULED_START[0], minutes=minutes - SCHEDULED_START[1])
    if interval <= timedelta(0):
        raise ValueError(f"the review deadline {deadline} is not after the 09:00 start")
    return interval


def _mail(channel: str, recipients: list[str], subject: str, lines: list[str], url: str
          ) -> OutgoingMail:
    text = "\n\n".join([*lines, url]) + "\n"
    html = ("".join(f"<p>{escape(line)}</p>" for line in lines)
            + f'<p><a href="{escape(url, quote=True)}">Abrir el borrador</a></p>')
    return OutgoingMail(channel=channel, recipients=recipients, subject=subject, html=html,
                        text=text)


def review_request(day: str, url: str, recipients: list[str], items: int | None = None,
                   attention: int | None = None) -> OutgoingMail:
    counts = (f"{items} elementos, {attention} necesitan atención."
              if items is not None and attention is not None else "")
    return _mail("mail:review", recipients, f"Resumen del BOE del {day}: pendiente de revisión",
                 [f"El borrador del resumen del BOE del {day} espera su revisión.", counts,
                  "Revíselo elemento a elemento en la pestaña «Borrador» de la ejecución:"]
                 if counts else
                 [f"El borrador del resumen del BOE del {day} espera su revisión.",
                  "Revíselo elemento a elemento en la pestaña «Borrador» de la ejecución:"], url)


def review_reminder(day: str, url: str, recipients: list[str], deadline: str) -> OutgoingMail:
    return _mail("mail:review-reminder", recipients,
                 f"Recordatorio: el resumen del BOE del {day} sigue sin aprobar",
                 [f"El resumen del BOE del {day} no está aprobado ni publicado en el plazo "
                  f"({deadline}).", "El borrador sigue esperando en:"], url)
