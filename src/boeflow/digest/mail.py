"""The e-mails of a published digest: one message per recipient list (the whole-digest list
and each watchlist's list), HTML (the digest page in both languages, CSS inlined) plus a
plain-text part (the Markdown digest)."""

from __future__ import annotations

import json
import os
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from boeflow.digest.model import Digest
from boeflow.digest.render import render_email_html, render_markdown
from boeflow.digest.watchlists import Watchlist


@dataclass(frozen=True)
class OutgoingMail:
    channel: str  # mail:digest | mail:watchlist:<name>
    recipients: list[str]
    subject: str
    html: str
    text: str
    message_id: str | None = None  # fixed per day, version, channel and recipient

    def to(self, recipient: str, message_id: str) -> OutgoingMail:
        """This message for one recipient (deliveries are recorded per recipient)."""
        return replace(self, recipients=[recipient], message_id=message_id)

    def message(self, sender: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = self.message_id or make_msgid(domain="boeflow.local")
        msg["Content-Language"] = "es, ca-valencia"
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        return msg


def digest_mails(digest: Digest, recipients: list[str],
                 watchlists: list[Watchlist]) -> list[OutgoingMail]:
    """Messages for a published digest (excluded items are already absent from it)."""
    if digest.status != "published":
        raise ValueError(f"the digest of {digest.date} is {digest.status}: only published "
                         "digests are sent")
    html = render_email_html(digest)
    text = render_markdown(digest)
    day = f"{digest.date:%d/%m/%Y}"
    mails: list[OutgoingMail] = []
    if recipients:
        mails.append(OutgoingMail(
            channel="mail:digest", recipients=sorted(set(recipients)),
            subject=f"BOE del {day}: resumen diario ({digest.header.items} elementos)",
            html=html, text=text))
    matches = {w.name: w.matches for w in digest.watchlists}
    for watch in watchlists:
        if not watch.recipients:
            continue
        found = matches.get(watch.name, [])
        lines = [f"Vigilancia «{watch.name}»: {len(found)} coincidencias el {day}", ""]
        lines += [f"- {m.boe_id} {m.title}" for m in found] or ["- Sin coincidencias hoy."]
        mails.append(OutgoingMail(
            channel=f"mail:watchlist:{watch.name}", recipients=sorted(set(watch.recipients)),
            subject=f"BOE del {day} · Vigilancia «{watch.name}»: {len(found)} coincidencias",
            html=html, text="\n".join(lines) + "\n\n" + text))
    return mails


def env_connection(conn_id: str) -> dict[str, Any] | None:
    """The Airflow Connection ``conn_id`` when it is defined in the environment
    (``AIRFLOW_CONN_<ID>``, JSON or URI form, as Airflow reads it), without importing
    Airflow; None when it is not (it may then live in Airflow's database)."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        data = dict(json.loads(raw))
    else:
        url = urlsplit(raw)
        data = {"conn_type": url.scheme, "host": url.hostname, "port": url.port,
                "login": unquote(url.username or "") or None,
                "password": unquote(url.password or "") or None,
                "extra": dict(parse_qsl(url.query))}
    extra = data.get("extra") or {}
    data["extra"] = json.loads(extra) if isinstance(extra, str) else dict(extra)
    return data


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def smtp_send(connection: dict[str, Any], sender: str
              ) -> Callable[[OutgoingMail], Callable[[], None]]:
    """Send one ``OutgoingMail`` through the SMTP server of an Airflow SMTP Connection's
    fields, with the SMTP provider's meaning of them (SSL unless ``disable_ssl``, STARTTLS
    unless ``disable_tls``, login when given, ``timeout`` seconds). It returns as soon as
    the server has accepted the message, with the rest of the session (QUIT) to call once
    that is recorded: the window where a crash leaves a sent message unrecorded is kept to
    the server's answer and the record's commit."""
    extra = connection.get("extra") or {}
    use_ssl = not _flag(extra.get("disable_ssl", False))
    host = str(connection.get("host") or "localhost")
    port = int(connection.get("port") or (465 if use_ssl else 587))
    timeout = float(extra.get("timeout", 30))

    def send(mail: OutgoingMail) -> Callable[[], None]:
        client = (smtplib.SMTP_SSL(host, port, timeout=timeout) if use_ssl
                  else smtplib.SMTP(host, port, timeout=timeout))
        try:
            if not use_ssl and not _flag(extra.get("disable_tls", False)):
                client.starttls()
            if connection.get("login"):
                client.login(str(connection["login"]), str(connection.get("password") or ""))
            client.send_message(mail.message(sender), from_addr=sender,
                                to_addrs=mail.recipients)
        except BaseException:
            client.close()
            raise

        def finish() -> None:
            try:
                client.quit()
            except smtplib.SMTPException:
                pass  # the message is accepted; a server that hangs up early is no error
            finally:
                client.close()

        return finish

    return send
