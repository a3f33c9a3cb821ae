"""The deliver step: the published digest sent by e-mail, exactly one message per
recipient, version and channel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from boeflow.core.errors import one_line
from boeflow.core.settings import Settings
from boeflow.jobs.common import TaskFailed, owns_resources, raw_store, recorded, resolve_settings
from boeflow.jobs.results import Delivered


def message_id(day: date, version: int, channel: str, recipient: str) -> str:
    """The Message-ID of one digest e-mail: the same for every attempt, so a resent copy
    (after a crash between SMTP's acceptance and the record) is recognisably the same."""
    import hashlib

    tag = hashlib.sha256(f"{channel}\n{recipient}".encode()).hexdigest()[:20]
    return f"<boeflow.{day:%Y%m%d}.v{version}.{tag}@boeflow.local>"


# Sends one boeflow.digest.mail.OutgoingMail; may return what closes the session, called
# once the delivery is recorded.
Sender = Callable[[Any], Any]


@owns_resources
def deliver_day(day: str, settings: Settings | None = None, send: Sender | None = None,
                run_id: str | None = None) -> Delivered:
    """E-mail the latest published version to each recipient once: one message per
    (day, version, channel, recipient), recorded ``sending`` just before it is handed to
    SMTP and ``sent`` once accepted; a rerun sends nothing already sent. A failed recipient
    is recorded and the task fails (Airflow retries it); the digest stays published."""
    from boeflow.digest.mail import digest_mails
    from boeflow.digest.publish import read_version
    from boeflow.digest.watchlists import load_watchlists
    from boeflow.state.db import state
    from boeflow.state.records import delivery, latest_digest, record_delivery

    settings = resolve_settings(settings)
    when = date.fromisoformat(day)
    with recorded(settings, day, "deliver", run_id) as detail:
        with state(settings) as conn:
            published = latest_digest(conn, when)
        if published is None:
            result = Delivered(day=day, sent=[], skipped=[], note="nothing published")
            detail.update(result.to_json())
            return result
        version = int(published["version"])
        digest = read_version(raw_store(settings), when, version)
        if digest is None:
            raise TaskFailed(f"published digest {day} v{version} missing from the raw store")
        mails = digest_mails(digest, settings.digest_recipients,
                             load_watchlists(settings.digest_watchlists_file))
        sent: list[str] = []
        skipped: list[str] = []
        failed: dict[str, str] = {}
        for group in mails:
            for recipient in group.recipients:
                label = f"{group.channel}:{recipient}"
                with state(settings) as conn:
                    done = delivery(conn, when, version, group.channel, recipient)
                if done and done["status"] == "sent":
                    skipped.append(label)
                    continue
                if send is None:
                    raise TaskFailed("no mail sender configured")
                mail = group.to(recipient, message_id(when, version, group.channel, recipient))
                with state(settings) as conn:
                    record_delivery(conn, when, version, group.channel, recipient,
                                    status="sending", subject=mail.subject,
                                    message_id=mail.message_id or "")
                error = None
                finish: Any = None
                with state(settings) as conn:
                    try:
                        # "sent" is written first and committed the moment SMTP accepts the
                        # message: a crash can only fall between the server's answer and
                        # this commit (one round trip) to leave a sent message unrecorded.
                        with conn.transaction():
                            record_delivery(conn, when, version, group.channel, recipient,
                                            status="sent", subject=mail.subject,
                                            message_id=mail.message_id or "")
                            finish = send(mail)
                    except Exception as exc:  # recorded, then retried by Airflow
                        error = f"{type(exc).__name__}: {one_line(exc)}"[:300]
                        failed[label] = error
                        record_delivery(conn, when, version, group.channel, recipient,
                                        status="failed", subject=mail.subject,
                                        message_id=mail.message_id or "", error=error)
                if callable(finish):  # the rest of the SMTP session, once recorded
                    finish()
                if error is None:
                    sent.append(label)
        result = Delivered(day=day, version=version, sent=sent, skipped=skipped, failed=failed)
        detail.update(result.to_json())
        if failed:
            raise TaskFailed(f"delivery of {day} v{version} failed for "
                             f"{', '.join(failed)}: {next(iter(failed.values()))}")
    return result
