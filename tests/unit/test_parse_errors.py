"""Errors are data: broken inputs derived from real samples, single-file and batch CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from lxml import etree
from typer.testing import CliRunner

from boeflow.cli import app
from boeflow.core.settings import get_settings
from boeflow.core.types import Chunk, ParsedDocument
from boeflow.core.xmlsafe import parse_xml_bytes
from boeflow.parse import ParseError, parse_bytes, parse_file
from tests.unit.boe_text import DOCUMENTS, PDFS

GOOD = DOCUMENTS / "BOE-A-2024-24105.xml"


@pytest.fixture()
def cli_env(smoke_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("BOEFLOW_PROFILE", "smoke")
    monkeypatch.setenv("BOEFLOW_SMOKE_MODELS_DIR", str(smoke_models_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def truncated_xml(tmp_path: Path) -> Path:
    data = GOOD.read_bytes()
    path = tmp_path / "BOE-A-2024-24105-truncated.xml"
    path.write_bytes(data[: len(data) // 2])
    return path


def empty_texto(tmp_path: Path) -> Path:
    root = parse_xml_bytes((DOCUMENTS / "BOE-A-2024-25801.xml").read_bytes())
    texto = root.find("texto")
    assert texto is not None
    texto.clear()
    path = tmp_path / "empty-texto.xml"
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "BOE-A-2024-99999.xml"
    path.write_bytes(b"")
    with pytest.raises(ParseError, match=r"BOE-A-2024-99999\.xml: empty file \(0 bytes\)"):
        parse_file(path)


def test_truncated_xml_names_the_document(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as info:
        parse_file(truncated_xml(tmp_path))
    assert info.value.document == "BOE-A-2024-24105"
    assert "truncated" in info.value.reason


def test_empty_texto_names_the_document(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"^BOE-A-2024-25801: empty <texto>"):
        parse_file(empty_texto(tmp_path))


def test_corrupt_pdf(tmp_path: Path) -> None:
    data = (PDFS / "BOE-A-2024-24097.pdf").read_bytes()
    damaged = data[:1024] + bytes(len(data) - 1024)  # body overwritten with zeros
    with pytest.raises(ParseError) as info:
        parse_bytes(damaged, "BOE-A-2024-24097.pdf")
    assert "BOE-A-2024-24097" in str(info.value)
    assert "PDF" in info.value.reason


def test_encrypted_pdf_names_the_document() -> None:
    source = pymupdf.open(PDFS / "BOE-A-2024-26250.pdf")
    encrypted = source.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret",
                               owner_pw="owner")
    # The metadata is encrypted too, so the document is named by its file.
    with pytest.raises(ParseError, match=r"^BOE-A-2024-26250: encrypted PDF"):
        parse_bytes(encrypted, "raw/2024/12/17/BOE-A-2024-26250.pdf")
    with pytest.raises(ParseError, match=r"^download\.pdf: encrypted PDF"):
        parse_bytes(encrypted, "download.pdf")


def test_not_a_boe_document() -> None:
    with pytest.raises(ParseError, match="not a BOE <documento>"):
        parse_file(Path(__file__).parents[2] / "samples/boe/sumario/BOE-S-20241113.xml")


def test_single_file_failure_exits_non_zero(cli_env: CliRunner, tmp_path: Path) -> None:
    result = cli_env.invoke(app, ["parse", str(truncated_xml(tmp_path)), "--json"])
    assert result.exit_code == 1
    assert "BOE-A-2024-24105" in result.stderr and "truncated" in result.stderr
    assert result.stdout == ""


def test_batch_reports_and_skips_bad_items(cli_env: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / GOOD.name).write_bytes(GOOD.read_bytes())
    truncated_xml(batch)
    empty_texto(batch)
    (batch / "zero.pdf").write_bytes(b"")
    result = cli_env.invoke(app, ["parse", str(batch), "--json"])
    assert result.exit_code == 0
    docs = [ParsedDocument.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [d.id for d in docs] == ["BOE-A-2024-24105"]
    assert "skipped BOE-A-2024-24105:" in result.stderr  # the truncated copy, by its id
    assert "skipped BOE-A-2024-25801: empty <texto>" in result.stderr
    assert "zero.pdf: empty file" in result.stderr
    assert "1 parsed, 3 skipped" in result.stderr


def test_parse_json_has_the_contract_fields(cli_env: CliRunner) -> None:
    result = cli_env.invoke(app, ["parse", str(DOCUMENTS / "BOE-A-2025-9743.xml"), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("id", "title", "rango", "department", "section", "published", "url_pdf", "eli",
                "materias", "references", "units"):
        assert key in data
    assert data["published"] == "2025-05-17" and data["url_pdf"].startswith("https://")
    assert {"kind", "heading", "path", "text"} <= set(data["units"][1])


def test_chunk_command_prints_json_lines(cli_env: CliRunner) -> None:
    result = cli_env.invoke(app, ["chunk", str(GOOD), "--json", "--max-tokens", "128",
                                  "--overlap", "16"])
    assert result.exit_code == 0, result.stderr
    chunks = [Chunk.model_validate_json(line) for line in result.stdout.splitlines()]
    assert len(chunks) > 10 and all(c.n_tokens <= 128 for c in chunks)
    assert chunks[0].doc_id == "BOE-A-2024-24105"
    assert any(c.heading.startswith("Artículo 3.") for c in chunks)


def test_chunk_command_default_limit_and_bad_overlap(cli_env: CliRunner) -> None:
    result = cli_env.invoke(app, ["chunk", str(GOOD), "--json"])
    assert result.exit_code == 0, result.stderr
    assert max(json.loads(line)["n_tokens"] for line in result.stdout.splitlines()) <= 512
    bad = cli_env.invoke(app, ["chunk", str(GOOD), "--max-tokens", "64", "--overlap", "40"])
    assert bad.exit_code != 0 and "--overlap" in bad.stderr
