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
    """A ``boeflow.daily.deliver_day`` sender backed by ``DigestMailNotifier``."""

    def send(mail: OutgoingMail) -> None:
        DigestMailNotifier(mail, sender, smtp_conn_id).notify(context)

    return send
