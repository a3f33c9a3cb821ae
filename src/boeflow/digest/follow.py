"""Follow-a-law watchlists (issue 22): a watchlist entry that names a law ::

    [[watchlist]]
    name = "Procedimiento administrativo"
    law = "Ley 39/2015"                 # a BOE id, an ELI, a citation or an acronym (LPAC)
    relations = ["modifica", "deroga"]  # default: modifica, deroga, corrige, cita
    recipients = ["juridico@example.org"]

The law is resolved to its BOE id when the file is loaded (``boeflow.boe.citations``: the one
table and grammar links and search use); an item matches when its ``<analisis>`` references
the law with one of the relations. Each recipient gets one e-mail with only the hits of the
follow-a-law watchlists they are on (their items with their amendment cards), and none on a
day without hits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from boeflow.boe.citations import BY_ID, resolve_law
from boeflow.digest.model import Digest

if TYPE_CHECKING:
    from boeflow.digest.mail import OutgoingMail
    from boeflow.digest.watchlists import Watchlist

FollowRelation = Literal["modifica", "deroga", "corrige", "cita"]
RELATIONS: tuple[FollowRelation, ...] = ("modifica", "deroga", "corrige", "cita")
_WORDS = {"modifica": "modifica", "deroga": "deroga", "corrige": "corrige", "cita": "cita"}


def resolve(law: str) -> str:
    """The BOE id of the law a watchlist names; ValueError (one line) when unknown."""
    boe_id = resolve_law(law)
    if boe_id is None:
        raise ValueError(f"law {law!r} is not a BOE id, an ELI or a citation boeflow knows "
                         "(e.g. \"BOE-A-2015-10565\", \"Ley 39/2015\", \"LPAC\")")
    return boe_id


def describe(law: str, law_id: str, relations: Iterable[str]) -> str:
    known = BY_ID.get(law_id)
    name = f"{law} ({law_id})" if law != law_id else (
        f"{known.title} ({law_id})" if known else law_id)
    return f"norma: {name}; relaciones: {', '.join(relations)}"


def law_reasons(law_id: str | None, relations: Iterable[str],
                record: Mapping[str, Any]) -> list[str]:
    """Why an item (its boe-documents record) touches the followed law, if it does."""
    if not law_id:
        return []
    wanted = set(relations)
    found = []
    for ref in record.get("references") or []:
        if (ref.get("target_id") == law_id and ref.get("direction", "anterior") == "anterior"
                and ref.get("relation") in wanted):
            found.append(f"{_WORDS[ref['relation']]} {law_id}")
    return list(dict.fromkeys(found))


def _only(digest: Digest, ids: set[str], watch_names: set[str]) -> Digest:
    """The digest cut down to ``ids`` (and to the recipient's watchlists)."""
    cut = digest.model_copy(deep=True)
    for section in cut.sections:
        for dept in section.departments:
            dept.items = [i for i in dept.items if i.boe_id in ids]
            dept.compact = [i for i in dept.compact if i.boe_id in ids]
        section.departments = [d for d in section.departments if d.count]
    cut.sections = [s for s in cut.sections if s.count]
    cut.watchlists = [w for w in cut.watchlists if w.name in watch_names]
    cut.incidencias = []
    cut.excluded = []
    cut.header.items = len(cut.all_items())
    cut.header.sections = [h for h in cut.header.sections
                           if h.code in {s.code for s in cut.sections}]
    for count in cut.header.sections:
        count.items = next(s.count for s in cut.sections if s.code == count.code)
    cut.header.summarised = sum(1 for i in cut.all_items() if i.summary_es is not None)
    cut.header.needs_attention = sum(1 for i in cut.all_items()
                                     if i.review.status in ("needs_attention", "failed"))
    cut.header.incidencias = 0
    cut.header.excluded = 0
    return cut


def follow_mails(digest: Digest, watchlists: list[Watchlist]) -> list[OutgoingMail]:
    """One message per recipient of follow-a-law watchlists, with only their hits; none for
    a recipient without hits that day."""
    from boeflow.digest.mail import OutgoingMail
    from boeflow.digest.render import render_email_html, render_markdown

    hits = {w.name: w.matches for w in digest.watchlists}
    by_recipient: dict[str, list[Watchlist]] = {}
    for watch in watchlists:
        if watch.law_id:
            for address in watch.recipients:
                by_recipient.setdefault(address, []).append(watch)
    day = f"{digest.date:%d/%m/%Y}"
    mails: list[OutgoingMail] = []
    for address in sorted(by_recipient):
        watches = [w for w in by_recipient[address] if hits.get(w.name)]
        if not watches:
            continue
        ids = {m.boe_id for w in watches for m in hits[w.name]}
        cut = _only(digest, ids, {w.name for w in watches})
        lines = [f"Seguimiento de normas: {len(ids)} disposiciones del {day}", ""]
        for watch in watches:
            lines.append(f"«{watch.name}» ({watch.law} · {watch.law_id}):")
            lines += [f"- {m.boe_id} {m.title} — {', '.join(m.why)}" for m in hits[watch.name]]
            lines.append("")
        mails.append(OutgoingMail(
            channel="mail:follow", recipients=[address],
            subject=f"BOE del {day} · Seguimiento de normas: {len(ids)} "
                    f"{'disposición' if len(ids) == 1 else 'disposiciones'}",
            html=render_email_html(cut), text="\n".join(lines) + "\n" + render_markdown(cut)))
    return mails
