"""Chunking on the real samples with the smoke embedder's tokenizer (XLM-R)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from boeflow.core.settings import Settings
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.index.chunk import TokenCounter, chunk_document, default_max_tokens, load_tokenizer
from boeflow.parse import parse_bytes, parse_file
from tests.unit.boe_text import DOCUMENTS, SAMPLE_XMLS, in_order_coverage, texto_words

CONSTITUCION = DOCUMENTS / "BOE-A-1978-31229.xml"
DANA = DOCUMENTS / "BOE-A-2024-22928.xml"


@pytest.fixture(scope="module")
def counter(smoke_models_dir: Path) -> TokenCounter:
    settings = Settings(profile="smoke", smoke_models_dir=smoke_models_dir)
    return TokenCounter(load_tokenizer(settings))


@pytest.fixture(scope="module")
def parsed() -> dict[str, ParsedDocument]:
    return {path.stem: parse_file(path) for path in SAMPLE_XMLS}


def without_overlap(chunks: list[Chunk]) -> str:
    return "\n".join(c.bare_text[c.overlap_chars:] for c in chunks)


def check_invariants(doc: ParsedDocument, chunks: list[Chunk], counter: TokenCounter,
                     max_tokens: int) -> None:
    assert chunks
    # Independent of the word-count cache: tokenize every whole chunk text.
    recount = counter.exact_count([c.text for c in chunks])
    position = 0
    for chunk, tokens in zip(chunks, recount, strict=True):
        assert chunk.n_tokens == tokens <= max_tokens, chunk.id
        assert chunk.bare_text[chunk.overlap_chars:] == doc.text[chunk.start:chunk.end]
        assert chunk.start >= position, "chunks out of order or overlapping"
        # nothing but blank-line separators between consecutive chunks
        assert not doc.text[position:chunk.start].strip()
        position = chunk.end
        assert chunk.text.endswith(chunk.bare_text) and chunk.doc_id == doc.id
        context = chunk.text[:len(chunk.text) - len(chunk.bare_text) - 1]
        assert chunk.text == f"{context}\n{chunk.bare_text}" and "\n" not in context
    assert not doc.text[position:].strip()
    assert len({c.id for c in chunks}) == len(chunks)


def test_word_cached_counts_equal_full_tokenization(counter: TokenCounter) -> None:
    assert counter.additive, "the XLM-R tokenizer pre-splits on whitespace"
    texts = parse_file(DANA).text.split("\n\n")[:300]
    assert counter.count(texts) == counter.exact_count(texts)


def test_default_max_tokens_comes_from_the_model_config(smoke_settings: Settings) -> None:
    assert default_max_tokens(smoke_settings) == 512  # max_position_embeddings 514 - 2
    assert default_max_tokens(Settings(embed_max_seq_length=256)) == 256
    assert default_max_tokens(Settings()) == 512  # production bge-m3 setting


def test_every_sample_chunks_within_limit_and_covers_its_texto(
        parsed: dict[str, ParsedDocument], counter: TokenCounter) -> None:
    for path in SAMPLE_XMLS:
        doc = parsed[path.stem]
        chunks = chunk_document(doc, counter, 512, 64)
        check_invariants(doc, chunks, counter, 512)
        coverage = in_order_coverage(texto_words(path), without_overlap(chunks))
        assert coverage >= 0.995, (path.stem, coverage)


@pytest.mark.parametrize("stem", ["BOE-A-1978-31229", "BOE-A-2024-22928", "BOE-A-2025-13788",
                                  "BOE-B-2024-43583"])
def test_small_limit_splits_by_paragraph_sentence_and_table_rows(
        parsed: dict[str, ParsedDocument], counter: TokenCounter, stem: str) -> None:
    doc = parsed[stem]
    chunks = chunk_document(doc, counter, 96, 16)
    check_invariants(doc, chunks, counter, 96)
    coverage = in_order_coverage(texto_words(DOCUMENTS / f"{stem}.xml"), without_overlap(chunks))
    assert coverage >= 0.995
    for previous, chunk in itertools.pairwise(chunks):
        prefix = chunk.bare_text[:chunk.overlap_chars]
        if not prefix:
            continue
        if re.search(r"\|(?:-+\|)+\n$", prefix):  # a repeated table caption + header
            assert prefix.rstrip("\n") in doc.text[:chunk.start]
        else:  # an overlap: the text just before the chunk, i.e. the previous chunk's end
            assert doc.text[chunk.start - chunk.overlap_chars:chunk.start] == prefix
            assert previous.bare_text.endswith(doc.text[chunk.start - chunk.overlap_chars:
                                                        previous.end])


def test_long_table_is_split_by_rows_repeating_its_header(
        parsed: dict[str, ParsedDocument], counter: TokenCounter) -> None:
    doc = parsed["BOE-A-2024-22928"]
    chunks = [c for c in chunk_document(doc, counter, 512, 64)
              if "| Número | Denominación |" in c.bare_text]
    assert len(chunks) >= 3, "the annex table of municipalities should need several chunks"
    header = "| Número | Denominación |\n|---|---|\n"
    # the first part also carries the annex heading it belongs to
    assert chunks[0].bare_text.startswith("ANEXO\n\nListado de municipios afectados por la DANA")
    for chunk in chunks[1:]:
        assert chunk.bare_text[:chunk.overlap_chars] == header
        rows = chunk.bare_text[chunk.overlap_chars:].split("\n")
        assert all(row.startswith("| ") for row in rows if row and row.startswith("|"))
        assert rows[-1].startswith("| ") and rows[-1].endswith(" |")  # whole rows only


def test_one_article_per_chunk_when_it_fits(
        parsed: dict[str, ParsedDocument], counter: TokenCounter) -> None:
    doc = parsed["BOE-A-1978-31229"]
    chunks = chunk_document(doc, counter, 512, 64)
    art14 = [c for c in chunks if c.heading == "Artículo 14"]
    assert len(art14) == 1
    assert art14[0].text.startswith(
        "Constitución BOE-A-1978-31229 › TÍTULO I › CAPÍTULO SEGUNDO › Artículo 14\n")
    assert art14[0].path == ["TÍTULO I. De los derechos y deberes fundamentales",
                             "CAPÍTULO SEGUNDO. Derechos y libertades"]
    art149 = [c for c in chunks if c.heading == "Artículo 149"]
    assert len(art149) > 1 and all(c.n_tokens <= 512 for c in art149)
    assert all(c.overlap_chars > 0 for c in art149[1:])
    # the título heading joined the first chunk of what it heads
    art10 = next(c for c in chunks if c.heading == "Artículo 10")
    assert art10.bare_text.startswith("TÍTULO I\n\nDe los derechos y deberes fundamentales")


def test_tiny_neighbours_merge_only_within_the_same_parent(
        parsed: dict[str, ParsedDocument], counter: TokenCounter) -> None:
    for doc in parsed.values():
        units = [u for u in doc.units if u.kind not in
                 ("libro", "titulo", "capitulo", "seccion", "subseccion", "anexo")]
        for chunk in chunk_document(doc, counter, 512, 64):
            inside = [u for u in units if chunk.start <= u.start < chunk.end]
            assert len({tuple(u.path) for u in inside}) <= 1, chunk.id
            if " / " in chunk.heading:
                assert all(u.kind == inside[0].kind or u.kind == "firma" for u in inside)


def test_split_points_are_paragraph_or_sentence_boundaries(
        parsed: dict[str, ParsedDocument], counter: TokenCounter) -> None:
    doc = parsed["BOE-A-1978-31229"]
    chunks = chunk_document(doc, counter, 128, 16)
    ends = [doc.text[c.end - 1] for c in chunks] + [doc.text[c.end:c.end + 2] for c in chunks]
    sentence_or_paragraph = sum(1 for c in chunks if doc.text[c.end:c.end + 2] in ("\n\n", "")
                                or doc.text[c.end - 1] in ".;:»")
    assert sentence_or_paragraph / len(chunks) > 0.97, ends


def test_ids_are_stable_and_local_to_the_changed_article(counter: TokenCounter) -> None:
    data = CONSTITUCION.read_bytes()
    first = chunk_document(parse_bytes(data, "a"), counter, 512, 64)
    second = chunk_document(parse_bytes(data, "b"), counter, 512, 64)
    assert [c.id for c in first] == [c.id for c in second]
    art14 = next(c for c in first if c.heading == "Artículo 14")
    # sha256 of the text: the same on every machine and Python version
    assert art14.id == "BOE-A-1978-31229:titulo-i/capitulo-segundo/articulo-14:" + \
        _sha16(art14.bare_text)

    changed = data.replace("Los españoles son iguales ante la ley".encode(),
                           "Los españoles y españolas son iguales ante la ley".encode())
    assert changed != data
    edited = chunk_document(parse_bytes(changed, "c"), counter, 512, 64)
    assert len(edited) == len(first)
    differing = [(a, b) for a, b in zip(first, edited, strict=True) if a.id != b.id]
    assert [a.heading for a, _ in differing] == ["Artículo 14"]


def _sha16(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_invalid_limits_are_clear_errors(parsed: dict[str, ParsedDocument],
                                         counter: TokenCounter) -> None:
    doc: Any = parsed["BOE-A-2024-25801"]
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document(doc, counter, 8, 0)
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(doc, counter, 128, 64)
