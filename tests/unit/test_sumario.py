"""The sumario parsers on the real recorded sumarios (API XML, API JSON, legacy XML)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from lxml import etree

from boeflow.boe.fetch import describe_document
from boeflow.boe.http import FetchError, RateLimiter, parse_retry_after
from boeflow.boe.sumario import (
    NoPublication,
    SumarioFormatError,
    canonical_url,
    parse_api_json,
    parse_api_xml,
    parse_legacy_xml,
    rebase_url,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "boe"
SUMARIOS = SAMPLES / "sumario"


def read(name: str) -> bytes:
    return (SUMARIOS / name).read_bytes()


def test_api_json_and_xml_of_the_same_day_yield_identical_items() -> None:
    from_xml = parse_api_xml(read("BOE-S-20241106.xml"))
    from_json = parse_api_json(read("BOE-S-20241106.json"))
    assert len(from_xml.items) == len(from_json.items) == 238
    assert from_xml.items == from_json.items
    assert from_xml.diarios == from_json.diarios
    assert from_xml.day == from_json.day
    assert from_xml.day is not None and from_xml.day.isoformat() == "2024-11-06"


def test_api_item_fields_from_the_real_sumario() -> None:
    sumario = parse_api_xml(read("BOE-S-20241106.xml"))
    first = sumario.items[0]
    assert first.id == "BOE-A-2024-22928"
    assert first.section == "1" and first.section_name == "I. Disposiciones generales"
    assert first.department == "JEFATURA DEL ESTADO" and first.department_code == "7723"
    assert first.epigrafe == "Medidas urgentes"
    assert first.control == "2024/17088"
    assert first.pdf_size == 536367
    assert (first.first_page, first.last_page, first.page_count) == (141117, 141165, 49)
    assert first.url_xml == "https://www.boe.es/diario_boe/xml.php?id=BOE-A-2024-22928"
    assert sumario.diarios[0].sumario_id == "BOE-S-2024-268"
    assert sumario.diarios[0].pdf_size == 443239
    # Sections 4/5 hang items from the department: no epigrafe, no control.
    five_c = [i for i in sumario.items if i.section == "5C"]
    assert [i.id for i in five_c] == ["BOE-B-2024-40245", "BOE-B-2024-40246"]
    assert all(i.epigrafe is None and i.control is None for i in five_c)


def test_json_items_wrapped_in_texto_are_found() -> None:
    raw = json.loads(read("BOE-S-20241106.json"))
    five_c = [s for s in raw["data"]["sumario"]["diario"][0]["seccion"] if s["codigo"] == "5C"]
    assert "texto" in five_c[0]["departamento"]  # the quirk is really in the sample
    ids = [i.id for i in parse_api_json(read("BOE-S-20241106.json")).items]
    assert "BOE-B-2024-40245" in ids and "BOE-B-2024-40246" in ids


def test_json_single_object_where_a_list_is_expected() -> None:
    raw = json.loads(read("BOE-S-20241106.json"))
    sumario = raw["data"]["sumario"]
    sumario["diario"] = sumario["diario"][0]  # list of one → the object itself
    first_section = sumario["diario"]["seccion"][0]
    first_section["departamento"] = first_section["departamento"][0]
    reshaped = parse_api_json(json.dumps(raw).encode())
    expected = parse_api_xml(read("BOE-S-20241106.xml"))
    # Only the first department of section 1 stays, everything else is identical.
    dropped = {i.id for i in expected.items if i.section == "1"
               and i.department != "JEFATURA DEL ESTADO"}
    assert reshaped.items == [i for i in expected.items if i.id not in dropped]
    assert len(reshaped.diarios) == 1


def test_several_diarios_in_one_day() -> None:
    root = etree.fromstring(read("BOE-S-20241106.xml"))
    sumario = root.find("data/sumario")
    assert sumario is not None
    extraordinary = copy.deepcopy(sumario.find("diario"))
    assert extraordinary is not None
    extraordinary.set("numero", "269")
    sumario.append(extraordinary)
    parsed = parse_api_xml(etree.tostring(root))
    assert [d.number for d in parsed.diarios] == ["268", "269"]
    assert len(parsed.items) == 2 * 238
    assert {i.diario for i in parsed.items[238:]} == {"269"}


@pytest.mark.parametrize("name,count,day", [
    ("BOE-S-20241113.xml", 219, "2024-11-13"),
    ("BOE-S-20250307.xml", 178, "2025-03-07"),
])
def test_other_api_sumarios(name: str, count: int, day: str) -> None:
    parsed = parse_api_xml(read(name))
    assert len(parsed.items) == count
    assert parsed.day is not None and parsed.day.isoformat() == day
    assert len({i.id for i in parsed.items}) == count


def test_legacy_sumario_into_the_same_model() -> None:
    parsed = parse_legacy_xml(read("BOE-S-20200507.xml"))
    assert parsed.source == "legacy"
    assert parsed.day is not None and parsed.day.isoformat() == "2020-05-07"
    assert len(parsed.items) == 60
    assert parsed.diarios[0].sumario_id == "BOE-S-2020-127"
    first = parsed.items[0]
    assert first.id == "BOE-A-2020-4859" and first.control == "2020/4900"
    assert first.section == "1" and first.department_code == "9574"
    assert first.page_count == 189 and first.pdf_size == 5692765
    # Site-relative URLs become absolute BOE URLs.
    assert first.url_pdf == "https://www.boe.es/boe/dias/2020/05/07/pdfs/BOE-A-2020-4859.pdf"
    assert first.url_xml == "https://www.boe.es/diario_boe/xml.php?id=BOE-A-2020-4859"
    assert {i.section for i in parsed.items} == {"1", "2B", "3", "4", "5A", "5B"}


def test_section_selection() -> None:
    parsed = parse_api_xml(read("BOE-S-20241106.xml"))
    assert len(parsed.select(["1"])) == 8
    assert {i.section for i in parsed.select(["2"])} == {"2A", "2B"}
    assert {i.section for i in parsed.select(["5c", "1"])} == {"1", "5C"}
    assert len(parsed.select(None)) == 238


def test_status_payload_404_is_no_publication() -> None:
    xml = (b'<?xml version="1.0" encoding="utf-8"?><response><status><code>404</code>'
           b"<text>La informaci\xc3\xb3n solicitada no existe</text></status><data/></response>")
    with pytest.raises(NoPublication, match="404"):
        parse_api_xml(xml)
    with pytest.raises(NoPublication, match="404"):
        parse_api_json(b'{"status": {"code": "404", "text": "no existe"}, "data": ""}')


def test_wrong_payloads_raise_format_errors() -> None:
    with pytest.raises(SumarioFormatError):
        parse_api_json(read("BOE-S-20241106.json")[:1000])
    with pytest.raises(SumarioFormatError, match="legacy"):
        parse_legacy_xml(read("BOE-S-20241106.xml"))
    with pytest.raises(SumarioFormatError, match="not an API sumario"):
        parse_api_xml(read("BOE-S-20200507.xml"))


def test_urls_map_onto_the_configured_base() -> None:
    base = "http://127.0.0.1:8080"
    assert rebase_url("https://www.boe.es/diario_boe/xml.php?id=BOE-A-2024-22928", base) == \
        "http://127.0.0.1:8080/diario_boe/xml.php?id=BOE-A-2024-22928"
    assert rebase_url("/boe/dias/2020/05/07/pdfs/X.pdf", base + "/mirror/") == \
        "http://127.0.0.1:8080/mirror/boe/dias/2020/05/07/pdfs/X.pdf"
    with pytest.raises(ValueError, match="outside the BOE"):
        rebase_url("https://evil.example/x.pdf", base)
    assert canonical_url("/diario_boe/txt.php?id=A") == "https://www.boe.es/diario_boe/txt.php?id=A"


def test_correction_links_from_analisis() -> None:
    data = (SAMPLES / "documents" / "BOE-A-2024-24097.xml").read_bytes()
    info = describe_document("BOE-A-2024-24097", data)
    assert "BOE-A-2024-22928" in info.corrects  # corrects Real Decreto-ley 6/2024
    assert info.empty_text is False
    with pytest.raises(FetchError, match="BOE-A-2024-24097 instead"):
        describe_document("BOE-A-2024-22928", data)


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


def test_rate_limiter_spaces_request_starts() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(2.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock[0] == pytest.approx(2.0)  # 5 starts at 0, .5, 1, 1.5, 2 s
    assert slept == [pytest.approx(0.5)] * 4
