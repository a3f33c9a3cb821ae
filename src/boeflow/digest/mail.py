"""The e-mails of a published digest: one message per recipient list (the whole-digest list
and each watchlist's list), HTML (the digest page in both languages, CSS inlined) plus a
plain-text part (the Markdown digest)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

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
