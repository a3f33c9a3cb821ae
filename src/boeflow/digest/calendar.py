"""The deadlines calendar published with each digest (``icalendar``):

    digests/YYYY/MM/DD/plazos.ics   the day's entries into force and deadlines
    digests/plazos.ics              rolling: every published day's, for the last year

One all-day event per dated entry into force or deadline of an item's facts card
(``boeflow.review.card``), with a stable UID (``<boe_id>-vigor@boeflow``,
``<boe_id>-plazo-<n>@boeflow``), so a republished day replaces its events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from icalendar import Calendar, Event

from boeflow.boe.store import RawStore
from boeflow.digest.model import Digest, Item

ROLLING_PATH = "digests/plazos.ics"
ROLLING_DAYS = 366
PRODID = "-//boeflow//plazos BOE//ES"


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    return cal


def _event(uid: str, day: date, summary: str, description: str, url: str,
           stamp: datetime) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    if url:
        event.add("url", url)
    return event


def item_events(item: Item, stamp: datetime) -> list[Event]:
    card = item.card
    if card is None:
        return []
    events = []
    title = " ".join(item.title_es.split())
    short = title if len(title) <= 90 else title[:89] + "…"
    force = card.entrada_en_vigor
    if force is not None and force.date is not None:
        where = f" ({force.source.path})" if force.source else ""
        events.append(_event(f"{item.boe_id}-vigor@boeflow", force.date,
                             f"Entrada en vigor: {item.boe_id} {short}",
                             f"{force.text}{where}", item.url, stamp))
    for n, plazo in enumerate(card.plazos, start=1):
        if plazo.date is None:
            continue
        where = f" ({plazo.source.path})" if plazo.source else ""
        events.append(_event(f"{item.boe_id}-plazo-{n}@boeflow", plazo.date,
                             f"Fin de plazo: {item.boe_id} {plazo.text}",
                             f"{short}. {plazo.text}{where}. {plazo.computation or ''}".strip(),
                             item.url, stamp))
    return events


def day_calendar(digest: Digest) -> Calendar:
    cal = _calendar(f"Plazos del BOE del {digest.date.isoformat()}")
    stamp = digest.generated_at.astimezone(UTC)
    excluded = {e.boe_id for e in digest.excluded}
    for item in digest.all_items():
        if item.boe_id not in excluded:
            for event in item_events(item, stamp):
                cal.add_component(event)
    return cal


def rolling_calendar(previous: bytes | None, day: Calendar, today: date) -> Calendar:
    """``previous`` rolling calendar with ``day``'s events added (same UID: replaced) and
    events older than ``ROLLING_DAYS`` dropped."""
    cal = _calendar("Plazos del BOE")
    fresh = {str(e["uid"]): e for e in day.walk("VEVENT")}
    oldest = today - timedelta(days=ROLLING_DAYS)
    if previous:
        for event in Calendar.from_ical(previous).walk("VEVENT"):
            start = event.decoded("dtstart")
            start = start.date() if isinstance(start, datetime) else start
            if str(event["uid"]) not in fresh and start >= oldest:
                cal.add_component(event)
    for event in fresh.values():
        cal.add_component(event)
    return cal


def write_calendars(store: RawStore, digest: Digest, prefix: str) -> dict[str, str]:
    """Write the day's ``plazos.ics`` under ``prefix`` and update the rolling calendar."""
    day = day_calendar(digest)
    path = f"{prefix}/plazos.ics"
    # A killed writer's temporary copies of both calendars (callers hold the day's
    # publication lock and the feed lock: nobody else writes beside them).
    for target in (path, ROLLING_PATH):
        store.remove_stale_temps(target.rpartition("/")[0], recursive=False)
    store.write_atomic(path, day.to_ical())
    previous = store.read(ROLLING_PATH) if store.exists(ROLLING_PATH) else None
    store.write_atomic(ROLLING_PATH, rolling_calendar(previous, day, digest.date).to_ical())
    return {"ics": path, "ics_rolling": ROLLING_PATH}
