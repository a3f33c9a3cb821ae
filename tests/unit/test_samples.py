"""The repository's sample copy is byte-identical to the recorded BOE files (SOURCES.md)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from boeflow.boe.samples import (
    ARCHIVE,
    SUMS,
    SampleError,
    archived_members,
    recorded_sumario_days,
    unpack,
)
from tests.conftest import SAMPLES


def test_every_listed_sample_matches_its_recorded_sha256() -> None:
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", sources, flags=re.M)
    assert len(listed) >= 15
    for relative, expected in listed:
        digest = hashlib.sha256((SAMPLES / relative).read_bytes()).hexdigest()
        assert digest == expected, relative


def test_attribution_is_kept() -> None:
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    assert "Basado en datos de la Agencia Estatal Boletín Oficial del Estado" in sources


def test_the_archive_unpacks_and_every_member_matches_sha256sums(tmp_path: Path) -> None:
    """The packed recordings (archive/boe-2024-2025.tar.xz) are whole and unaltered, and
    none of them duplicates a loose sample."""
    members = archived_members(SAMPLES)
    sumarios = [m for m in members if m.startswith("sumario/")]
    documents = [m for m in members if m.startswith("documents/")]
    assert len(sumarios) == 184 and len(documents) == 45
    assert not [m for m in members if (SAMPLES / m).exists()]
    root = unpack(SAMPLES, tmp_path / "root")
    for name, digest in members.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    assert len(recorded_sumario_days(SAMPLES)) == 189


def test_a_damaged_member_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    (copy / "archive").mkdir(parents=True)
    for folder in ("sumario", "documents", "pdf"):
        (copy / folder).mkdir()
    shutil.copy(SAMPLES / ARCHIVE, copy / ARCHIVE)
    sums = (SAMPLES / SUMS).read_text().splitlines()
    sums[3] = "0" * 64 + sums[3][64:]
    (copy / SUMS).write_text("\n".join(sums) + "\n")
    with pytest.raises(SampleError, match="does not match SHA256SUMS"):
        unpack(copy, tmp_path / "root")


def test_the_composed_day_lists_every_recorded_document_once(tmp_path: Path) -> None:
    from boeflow.boe.document import parse_document_meta
    from boeflow.boe.samples import COMPOSED_DAY, COMPOSED_SUMARIO_ID, compose_day
    from boeflow.boe.sumario import parse_sumario
    from boeflow.core.xmlsafe import parse_xml_bytes
    from boeflow.digest.model import SECTION_ORDER

    root = unpack(SAMPLES, tmp_path / "root")
    compose_day(root)
    assert COMPOSED_DAY.weekday() == 6  # a Sunday: never a real BOE day
    sumario = parse_sumario((root / "sumario" / f"BOE-S-{COMPOSED_DAY:%Y%m%d}.xml")
                            .read_bytes(), "api-xml")
    documents = sorted((root / "documents").glob("*.xml"))
    assert len(documents) == 101
    assert sorted(i.id for i in sumario.items) == sorted(p.stem for p in documents)
    assert [d.sumario_id for d in sumario.diarios] == [COMPOSED_SUMARIO_ID]
    assert sumario.day == COMPOSED_DAY
    rank = [code for code, _ in SECTION_ORDER]
    sections = list(dict.fromkeys(i.section for i in sumario.items))
    assert sections == sorted(sections, key=rank.index)
    for item in sumario.items:  # the real titles, and a real department for every item
        meta = parse_document_meta(parse_xml_bytes((root / "documents" / f"{item.id}.xml")
                                                   .read_bytes()))
        assert " ".join(item.title.split()) == " ".join(meta.title.split()), item.id
        assert item.department and item.url_xml and item.url_xml.endswith(item.id)
    # Items of a recorded day keep that sumario's listing (epígrafe included).
    rdl = next(i for i in sumario.items if i.id == "BOE-A-2024-22928")
    assert (rdl.section, rdl.department) == ("1", "JEFATURA DEL ESTADO") and rdl.epigrafe
    with pytest.raises(SampleError, match="recorded day"):
        compose_day(root, COMPOSED_DAY.replace(day=5))
