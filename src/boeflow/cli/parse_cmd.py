"""``boeflow parse`` and ``boeflow chunk``: one file, several files or a directory.

With one file a failure is an error (one line, non-zero exit). With several files or a
directory each bad item is reported on stderr, naming its BOE id, and skipped; the exit
status is 0 so that one broken download does not stop a day's batch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from boeflow.cli.common import err_console, fail, print_json
from boeflow.core.settings import get_settings
from boeflow.core.types import ParsedDocument
from boeflow.parse import ParseError, parse_file

DOCUMENT_SUFFIXES = {".xml", ".pdf", ".html", ".htm"}

FilesArgument = typer.Argument(..., help="BOE item files (XML, PDF, HTML) or directories")


def _expand(paths: list[Path]) -> tuple[list[Path], bool]:
    """The files to process and whether this is a batch (several files or a directory)."""
    files: list[Path] = []
    batch = len(paths) > 1
    for path in paths:
        if path.is_dir():
            batch = True
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES))
        else:
            files.append(path)
    return files, batch


def _each_document(paths: list[Path]) -> Iterator[tuple[ParsedDocument, bool]]:
    files, batch = _expand(paths)
    if not files:
        fail("no documents to process", "give BOE XML, PDF or HTML files or a directory")
    settings = get_settings()
    failures = 0
    for file in files:
        try:
            yield parse_file(file, settings), batch
        except ParseError as exc:
            if not batch:
                fail(f"cannot parse {exc.document}: {exc.reason}", f"file: {file}")
            failures += 1
            err_console.print(f"[yellow]skipped[/] {exc.document}: {exc.reason}",
                              highlight=False, soft_wrap=True, markup=True)
    if batch:
        err_console.print(f"{len(files) - failures} parsed, {failures} skipped",
                          highlight=False)


def _write_line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def parse(files: list[Path] = FilesArgument,
          as_json: bool = typer.Option(False, "--json", help="print the ParsedDocument JSON "
                                       "(one object; one line per document in batch mode)"),
          ) -> None:
    """Parse BOE documents into their legal structure."""
    for doc, batch in _each_document(files):
        if as_json:
            data = doc.model_dump(mode="json")
            _write_line(data) if batch else print_json(data)
            continue
        counts: dict[str, int] = {}
        for unit in doc.units:
            counts[unit.kind] = counts.get(unit.kind, 0) + 1
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        typer.echo(f"{doc.id} [{doc.source_format}] {doc.title[:90]}\n  {summary}")


def chunk(files: list[Path] = FilesArgument,
          as_json: bool = typer.Option(False, "--json", help="JSON lines, one chunk each"),
          max_tokens: int | None = typer.Option(None, "--max-tokens", min=32, help="token "
                                                "limit per chunk (default: the embedder's)"),
          overlap: int = typer.Option(64, "--overlap", min=0, help="tokens repeated between "
                                      "the parts of a split unit"),
          ) -> None:
    """Split BOE documents into article-aware chunks for embedding."""
    from boeflow.index.chunk import TokenCounter, chunk_document, default_max_tokens, load_tokenizer

    settings = get_settings()
    limit = max_tokens or default_max_tokens(settings)
    if overlap >= limit // 2:
        fail(f"--overlap {overlap} must be less than half of --max-tokens ({limit})")
    counter = TokenCounter(load_tokenizer(settings))  # a failure is one line (BoeflowError)
    emit: Callable[[dict[str, Any]], None] = _write_line
    for doc, _batch in _each_document(files):
        try:
            chunks = chunk_document(doc, counter, limit, overlap)
        except ValueError as exc:
            fail(f"cannot chunk {doc.id}: {exc}")
        for item in chunks:
            if as_json:
                emit(item.model_dump(mode="json"))
            else:
                typer.echo(f"{item.id}  {item.n_tokens:>4} tok  {item.text.splitlines()[0]}")


def register(app: typer.Typer) -> None:
    app.command("parse")(parse)
    app.command("chunk")(chunk)
