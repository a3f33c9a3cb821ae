"""``boeflow facts``: the entry-into-force and deadline card, against the expected cards
checked by hand (src/boeflow/review/data/facts_expected.json), the anchors against the
parsed text, bad input, and the ICS calendar published with the digest."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from icalendar import Calendar as ICalendar
from typer.testing import CliRunner

from boeflow.cli import app
from boeflow.digest.build import card_from
from boeflow.digest.calendar import day_calendar, rolling_calendar
from boeflow.digest.model import Department, Digest, Header, Item, ItemReview, Section
from boeflow.review.card import Calendar, add_months, deadline_date, facts_card
from boeflow.review.source import SourceDocument, SourceSection, read_document
from tests.conftest import SAMPLES

DOCUMENTS = SAMPLES / "documents"
EXPECTED = json.loads((Path(__file__).parents[2] / "src" / "boeflow" / "review" / "data"
                       / "facts_expected.json").read_text(encoding="utf-8"))


def test_expected_cards_are_enough() -> None:
    cards = EXPECTED["cards"]
    assert len(cards) >= 20
    assert sum(1 for c in cards if c["entrada_en_vigor"] and c["entrada_en_vigor"]["date"]) >= 20
    assert sum(len(c["plazos"]) for c in cards) >= 10
    assert all(p["computation"] for c in cards for p in c["plazos"])


@pytest.mark.parametrize("expected", EXPECTED["cards"], ids=lambda c: c["boe_id"])
def test_card_equals_the_hand_checked_dates(expected: dict[str, object]) -> None:
    doc = read_document(DOCUMENTS / f"{expected['boe_id']}.xml")
    card = facts_card(doc, EXPECTED["region"])
    assert card["boe_id"] == expected["boe_id"] and card["published"] == expected["published"]
    force = expected["entrada_en_vigor"]
    if force is None:
        assert card["entrada_en_vigor"] is None or card["entrada_en_vigor"]["date"] is None
    else:
        assert isinstance(force, dict)
        assert card["entrada_en_vigor"]["date"] == force["date"]
        assert card["entrada_en_vigor"]["source"]["path"] == force["path"]
    assert isinstance(expected["plazos"], list)
    for plazo in expected["plazos"]:
        found = [p for p in card["plazos"] if p["source"]["path"] == plazo["path"]
                 and p["text"] == plazo["text"] and p["date"] == plazo["date"]]
        assert found, (plazo, [(p["source"]["path"], p["date"]) for p in card["plazos"]])


@pytest.mark.parametrize("path", sorted(DOCUMENTS.glob("*.xml")), ids=lambda p: p.stem)
def test_every_anchor_quotes_the_parsed_text_at_its_offsets(path: Path) -> None:
    doc = read_document(path)
    card = facts_card(doc)
    text = doc.anchor_source().text
    anchors = [p["source"] for p in card["plazos"]] + [a["source"] for a in card["importes"]]
    if card["entrada_en_vigor"] and card["entrada_en_vigor"]["source"]:
        anchors.append(card["entrada_en_vigor"]["source"])
    for anchor in anchors:
        assert text[anchor["start"]:anchor["end"]] == anchor["quote"], anchor
    for plazo in card["plazos"]:  # a date, or no date and the reason
        assert plazo["date"] is not None or plazo.get("reason"), plazo


def _doc(text: str, published: date | None = date(2025, 3, 3)) -> SourceDocument:
    return SourceDocument(id="BOE-A-2025-99999", title="Orden de prueba", rango="Orden",
                          published=published,
                          sections=[SourceSection(text=text)] if text else [])


def test_bad_input_gives_null_dates_with_reasons() -> None:
    empty = facts_card(_doc(""))
    assert empty["entrada_en_vigor"] == {"text": "", "date": None, "source": None,
                                         "reason": "el documento no tiene texto"}
    undetermined = facts_card(_doc("Las alegaciones se presentarán en el plazo de diez días "
                                   "que se determine en la convocatoria."))
    [plazo] = undetermined["plazos"]
    assert plazo["date"] is None and plazo["reason"]
    impossible = facts_card(_doc("Esta orden entrará en vigor el 31 de febrero de 2025."))
    assert impossible["entrada_en_vigor"]["date"] is None
    assert "fecha imposible" in impossible["entrada_en_vigor"]["reason"]
    no_date = facts_card(_doc("Esta orden entrará en vigor el día siguiente al de su "
                              "publicación en el «Boletín Oficial del Estado».", None))
    assert no_date["entrada_en_vigor"]["date"] is None
    assert no_date["entrada_en_vigor"]["reason"]


def test_business_days_months_and_the_last_day() -> None:
    cal = Calendar("VC")
    # 20 business days from Friday 27-12-2024: 1 and 6 January are holidays.
    assert cal.add_business_days(date(2024, 12, 27), 20) == date(2025, 1, 28)
    # 19 March (San José) is a holiday in the Comunitat Valenciana, not in Madrid.
    assert not cal.is_business_day(date(2025, 3, 19))
    assert Calendar("MD").is_business_day(date(2025, 3, 19))
    # Months date to date, to the month's last day when it has no such day.
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    last, how = deadline_date(date(2024, 11, 6), 2, "meses", "", cal)
    assert last == date(2025, 1, 7) and "inhábil" in how  # 6 January → next business day
    natural, _ = deadline_date(date(2025, 5, 2), 15, "días", "naturales", cal)
    assert natural == date(2025, 5, 19)  # 17 May is a Saturday


def test_deadline_from_the_publication_is_computed() -> None:
    card = facts_card(_doc("Los interesados podrán presentar alegaciones en el plazo de diez "
                           "días hábiles a contar desde el día siguiente al de la publicación "
                           "de esta orden en el «Boletín Oficial del Estado»."))
    [plazo] = card["plazos"]
    # Monday 3 March 2025 + 10 business days from Tuesday 4 = Monday 17 March.
    assert plazo["date"] == "2025-03-17" and plazo["from"]["event"] == "publicación"


def test_facts_cli_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOEFLOW_SAMPLES_DIR", str(SAMPLES))
    result = CliRunner().invoke(app, ["facts", "BOE-A-2024-27187", "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert set(card) == {"boe_id", "published", "entrada_en_vigor", "plazos", "importes",
                         "referencias"}
    assert card["plazos"][0]["date"] == "2025-01-28"
    assert set(card["plazos"][0]["source"]) == {"path", "start", "end", "quote"}
    missing = CliRunner().invoke(app, ["facts", "no-such-file.xml"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output


def test_ics_lists_the_deadlines_and_parses() -> None:
    doc = read_document(DOCUMENTS / "BOE-A-2024-22928.xml")
    item = Item(boe_id=doc.id, title_es=doc.title, review=ItemReview(status="auto_checked"),
                card=card_from(facts_card(doc)), compact=False)
    digest = Digest(date=date(2024, 11, 6), status="published",
                    header=Header(date=date(2024, 11, 6), items=1),
                    sections=[Section(code="1", label="I", name="Disposiciones generales",
                                      departments=[Department(name="Jefatura", items=[item])])],
                    generated_at=datetime(2024, 11, 6, 9, tzinfo=UTC))
    parsed = ICalendar.from_ical(day_calendar(digest).to_ical())
    events = {str(e["uid"]): e for e in parsed.walk("VEVENT")}
    assert events[f"{doc.id}-vigor@boeflow"].decoded("dtstart") == date(2024, 11, 7)
    ends = sorted(e.decoded("dtstart") for uid, e in events.items() if "-plazo-" in uid)
    assert date(2025, 1, 7) in ends
    rolling = rolling_calendar(parsed.to_ical(), day_calendar(digest), date(2024, 11, 6))
    assert len(list(rolling.walk("VEVENT"))) == len(events)  # same UIDs replaced, not doubled
