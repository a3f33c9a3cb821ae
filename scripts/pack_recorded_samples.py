"""Pack the recorded BOE publications that are not loose under samples/boe/ into one
reproducible archive: samples/boe/archive/boe-2024-2025.tar.xz and its SHA256SUMS.

    python scripts/pack_recorded_samples.py /path/to/boe-samples

The archive holds ``sumario/BOE-S-YYYYMMDD.xml`` (open-data API XML) and
``documents/BOE-X-YYYY-N.xml`` byte for byte; members are sorted, owned by 0:0 with mtime 0,
so the same inputs give the same archive. ``boeflow.boe.samples`` unpacks and checks it.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "boe"
ARCHIVE = SAMPLES / "archive" / "boe-2024-2025.tar.xz"
SUMS = SAMPLES / "archive" / "SHA256SUMS"


def members(source: Path) -> list[tuple[str, Path]]:
    chosen: list[tuple[str, Path]] = []
    for folder, pattern in (("sumario", "BOE-S-*.xml"), ("documents", "BOE-*.xml")):
        for path in sorted((source / folder).glob(pattern)):
            if not (SAMPLES / folder / path.name).exists():
                chosen.append((f"{folder}/{path.name}", path))
    return chosen


def main(source: Path) -> None:
    chosen = members(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in chosen:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    ARCHIVE.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    lines = [f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n"
             for name, path in chosen]
    SUMS.write_text("".join(lines), encoding="utf-8")
    print(f"{ARCHIVE.relative_to(REPO)}: {len(chosen)} files, {ARCHIVE.stat().st_size:,} B")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
