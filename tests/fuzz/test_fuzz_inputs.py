"""Fuzzing every parser of untrusted input (issue 9): BOE item XML, HTML pages, PDFs, the
sumario (API XML, API JSON, legacy XML), the fetch-time identity check, chunking of whatever
parses, and the search query path.

Inputs are generated two ways: structure-aware (random ``<texto>`` trees built from the BOE
vocabulary: tables with hostile spans, nested blocks, scripts, forms) and by mutating the
real recorded samples (byte flips, cuts, insertions, subtree swaps). Every example must end
with a result or one of boeflow's own errors (``BoeflowError``), within the time and memory
bounds of :func:`tests.fuzz.bounds.bounded`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from boeflow.boe.fetch import describe_document
from boeflow.boe.sumario import SumarioSource, parse_sumario
from boeflow.core.settings import Settings
from boeflow.core.types import ParsedDocument
from boeflow.index.chunk import TokenCounter, chunk_document, load_tokenizer
from boeflow.index.search import Filters, SearchInputError, _check_query, bm25_query
from boeflow.parse import parse_bytes
from boeflow.parse.xml import ROLE_OF_CLASS
from tests.fuzz.bounds import bounded

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "boe"
XML_SAMPLES = [SAMPLES / "documents" / name for name in (
    "BOE-A-2020-4866.xml", "BOE-A-2024-24105.xml", "BOE-B-2024-43491.xml",
    "BOE-A-2024-25801.xml")]
PDF_SAMPLES = sorted((SAMPLES / "pdf").glob("*.pdf"))
SUMARIOS: list[tuple[Path, SumarioSource]] = [
    (SAMPLES / "sumario" / "BOE-S-20241106.xml", "api-xml"),
    (SAMPLES / "sumario" / "BOE-S-20241106.json", "api-json"),
    (SAMPLES / "sumario" / "BOE-S-20200507.xml", "legacy"),
]


@cache
def _bytes(path: Path) -> bytes:
    return path.read_bytes()


@cache
def _counter() -> TokenCounter:
    from boeflow.core.settings import get_settings

    base = get_settings()
    settings = Settings(profile="smoke", smoke_models_dir=base.smoke_models_dir)
    return TokenCounter(load_tokenizer(settings))


@pytest.fixture(autouse=True, scope="module")
def _warm_up() -> None:
    """Load the tokenizer and spaCy's sentencizer once, outside the measured examples."""
    from boeflow.parse import parse_file

    chunk_document(parse_file(XML_SAMPLES[1]), _counter(), 128, 16)


# --- strategies -------------------------------------------------------------------------------

# Text that XML can carry (no control characters, no surrogates).
xml_text = st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                                 blacklist_characters="\ufffe\uffff"), max_size=30)
spans = st.one_of(st.integers(-3, 10**9).map(str), st.sampled_from(["abc", "", "1e9", "٣", "+2",
                                                                   " 3 ", "0", "-1"]),
                  xml_text)
TAGS = ["p", "table", "tr", "td", "th", "thead", "tbody", "caption", "div", "blockquote", "dl",
        "dt", "dd", "img", "br", "script", "style", "noscript", "span", "b", "i", "a", "sup"]
CLASSES = [*ROLE_OF_CLASS, "cabeza_tabla", "cuerpo_tabla_izq", "parrafo_2", ""]


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if draw(st.booleans()):
        attrs["class"] = draw(st.sampled_from(CLASSES))
    if draw(st.integers(0, 3)) == 0:
        attrs["colspan"] = draw(spans)
    if draw(st.integers(0, 3)) == 0:
        attrs["rowspan"] = draw(spans)
    if draw(st.integers(0, 6)) == 0:
        attrs["src"] = draw(st.sampled_from(["/x.png", "javascript:alert(1)", "", "http://e/x"]))
    return attrs


Node = tuple[str, dict[str, str], str, list[Any], str]
leaf: st.SearchStrategy[Node] = st.tuples(st.sampled_from(TAGS), attributes(), xml_text,
                                         st.just([]), xml_text)
trees: st.SearchStrategy[Node] = st.recursive(
    leaf, lambda children: st.tuples(st.sampled_from(TAGS), attributes(), xml_text,
                                     st.lists(children, max_size=5), xml_text),
    max_leaves=60)


def to_element(node: Node) -> etree._Element:
    tag, attrs, text, children, tail = node
    element = etree.Element(tag, attrs)
    element.text = text
    element.tail = tail
    element.extend(to_element(child) for child in children)
    return element


def xml_document(body: list[Node], template: bytes) -> bytes:
    """A real document's metadata with a generated ``<texto>``."""
    root = etree.fromstring(template)
    texto = root.find("texto")
    assert texto is not None
    texto.clear()
    texto.extend(to_element(node) for node in body)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def html_page(body: list[Node]) -> bytes:
    container = etree.Element("div", {"id": "textoxslt"})
    container.extend(to_element(node) for node in body)
    inner = etree.tostring(container, method="html", encoding="unicode")
    return ("<!DOCTYPE html><html><head><title>BOE-A-2024-1</title></head><body>"
            "<dl><dt>Referencia:</dt><dd>BOE-A-2024-1</dd></dl>"
            f"<h3 class='documento-tit'>Orden de prueba</h3>{inner}</body></html>").encode()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte-level mutations: flips, cuts, insertions, duplications."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "duplicate"]))
        if kind == "flip":
            out[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del out[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32) | st.sampled_from([
                b"<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", b"&x;",
                b"<table><tr><td colspan='999999999' rowspan='99999'>x</td></tr></table>",
                b"\x00", b"\xc3", b"]]>", b"<![CDATA[", b"<" * 40]))
        elif kind == "truncate":
            del out[at:]
        else:
            end = min(len(out), at + draw(st.integers(1, 4096)))
            out[at:at] = out[at:end]
    return bytes(out)


def check_parsed(doc: ParsedDocument) -> None:
    """What parsed must be consistent, and must chunk."""
    for unit in doc.units:
        assert 0 <= unit.start <= unit.end <= len(doc.text)
    assert "root:x:0:0" not in doc.text  # no external entity was resolved
    chunk_document(doc, _counter(), 128, 16)


def parse_and_check(data: bytes, source: str) -> None:
    outcome = bounded(lambda: parse_bytes(data, source))
    if isinstance(outcome, ParsedDocument):
        bounded(lambda: check_parsed(outcome))


# --- targets ----------------------------------------------------------------------------------

@given(st.lists(trees, min_size=1, max_size=6), st.sampled_from(XML_SAMPLES))
def test_generated_xml_texto(body: list[Node], template: Path) -> None:
    parse_and_check(xml_document(body, _bytes(template)), "generated.xml")


@given(st.data())
def test_mutated_real_xml(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(XML_SAMPLES))
    parse_and_check(data.draw(mutated(_bytes(sample))), sample.name)


@given(st.lists(trees, min_size=1, max_size=6))
def test_generated_html_pages(body: list[Node]) -> None:
    parse_and_check(html_page(body), "BOE-A-2024-1.html")


@given(st.integers(1, 3000), st.sampled_from(["div", "blockquote", "span", "table", "dl"]))
def test_deep_nesting(depth: int, tag: str) -> None:
    inner = f"<{tag}>" * depth + "<p>x</p>" + f"</{tag}>" * depth
    parse_and_check(html_page([]).replace(b"</body>", inner.encode() + b"</body>"),
                    "BOE-A-2024-1.html")
    template = _bytes(XML_SAMPLES[1])
    start = template.index(b"<texto>") + len(b"<texto>")
    parse_and_check(template[:start] + inner.encode() + template[start:], "deep.xml")


@given(st.data())
def test_mutated_real_pdf(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(PDF_SAMPLES))
    parse_and_check(data.draw(mutated(_bytes(sample))), sample.name)


@given(st.binary(max_size=2048))
def test_pdf_header_then_garbage(tail: bytes) -> None:
    parse_and_check(b"%PDF-1.7\n" + tail, "garbage.pdf")


@given(st.data())
def test_mutated_sumarios(data: st.DataObject) -> None:
    path, source = data.draw(st.sampled_from(SUMARIOS))
    payload = data.draw(mutated(_bytes(path)))
    bounded(lambda: parse_sumario(payload, source))


SUMARIO_KEYS = ["diario", "seccion", "departamento", "epigrafe", "item", "texto",
                "identificador", "url_pdf", "url_xml", "codigo", "nombre", "numero",
                "sumario_diario", "szBytes", "metadatos", "fecha_publicacion", "titulo"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(SUMARIO_KEYS) | st.text(max_size=5), children, max_size=5),
    max_leaves=40)


@given(json_values)
def test_generated_json_sumarios(sumario: Any) -> None:
    payload = json.dumps({"status": {"code": "200", "text": "ok"},
                          "data": {"sumario": sumario}}).encode()
    bounded(lambda: parse_sumario(payload, "api-json"))


@given(st.data())
def test_identity_check_of_fetched_documents(data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(XML_SAMPLES))
    payload = data.draw(mutated(_bytes(sample)))
    bounded(lambda: describe_document(sample.stem, payload))


queries = st.text(st.characters(), max_size=60) | st.lists(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.sampled_from(
        ["\u200b", "\u202e", "\x00", "*", "\"", "\\", " OR ", " AND ", "{", "}", "~", "^",
         "á", "artículo"]), max_size=30).map("".join)


@given(queries, st.sampled_from([None, "JEFATURA", "\udcff"]))
def test_search_query_path(query: str, department: str | None) -> None:
    def build() -> bytes:
        filters = Filters(department=department)
        filters.validate()
        body = bm25_query(_check_query(query), filters)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    bounded(build, SearchInputError)
