"""parse → chunk → embed → index for files or fetched days (``boeflow index``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elasticsearch import Elasticsearch

from boeflow.core.settings import Settings
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.index.client import bulk_client, ensure_indices, es_session, names_for
from boeflow.index.embed import Embedder, shared_embedder
from boeflow.index.report import IndexReport
from boeflow.index.writer import index_documents

DOCUMENT_SUFFIXES = (".xml", ".pdf", ".html", ".htm")


@dataclass
class PreparedBatch:
    pairs: list[tuple[ParsedDocument, list[Chunk]]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in
                                DOCUMENT_SUFFIXES and not p.name.startswith("BOE-S-")))
        else:
            files.append(path)
    return files


def make_chunker(settings: Settings) -> Callable[[ParsedDocument], list[Chunk]]:
    """Chunk documents exactly as ``boeflow chunk`` does by default (the embedder's own
    sequence limit, the default overlap), with one token counter for the whole run so its
    word cache serves every document."""
    from boeflow.index.chunk import TokenCounter, chunk_document, default_max_tokens, load_tokenizer

    counter = TokenCounter(load_tokenizer(settings))
    max_tokens = default_max_tokens(settings)
    return lambda doc: chunk_document(doc, counter, max_tokens)


def parse_and_chunk(files: Sequence[Path], settings: Settings) -> Iterator[
        tuple[Path, ParsedDocument | None, list[Chunk], str | None]]:
    """Yield (file, document, chunks, error) per file; a bad file yields its error."""
    from boeflow.parse import ParseError, parse_file

    chunker = make_chunker(settings)
    for path in files:
        try:
            doc = parse_file(path)
            chunks = chunker(doc)
        except ParseError as exc:
            yield path, None, [], str(exc)
            continue
        yield path, doc, chunks, None


def index_files(files: Sequence[Path], settings: Settings, embedder: Embedder | None = None,
                on_document: Callable[[str], None] | None = None,
                force: bool = False) -> IndexReport:
    embedder = embedder or shared_embedder(settings)
    with es_session(settings) as client:
        ensure_indices(client, settings, embedder.dimension)
        return _index_into(client, files, settings, embedder, on_document, force)


def _index_into(client: Elasticsearch, files: Sequence[Path], settings: Settings,
                embedder: Embedder, on_document: Callable[[str], None] | None,
                force: bool) -> IndexReport:
    failures: dict[str, str] = {}

    def pairs() -> Iterator[tuple[ParsedDocument, list[Chunk]]]:
        for path, doc, chunks, error in parse_and_chunk(files, settings):
            if doc is None:
                failures[path.stem] = error or "unknown parse error"
                if on_document:
                    on_document(path.stem)
                continue
            yield doc, chunks

    report = index_documents(bulk_client(client, settings), names_for(settings), embedder, pairs(),
                             smoke=settings.is_smoke, on_document=on_document,
                             force=force)
    report.failed.update(failures)
    return report
