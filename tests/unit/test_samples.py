"""The repository's sample copy is byte-identical to the recorded BOE files (SOURCES.md)."""

from __future__ import annotations

import hashlib
import re

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
