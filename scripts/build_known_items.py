"""Regenerate the shipped known-item retrieval set from the repository's BOE samples.

    python scripts/build_known_items.py > src/boeflow/data/known_items.jsonl

Queries are derived mechanically (titles without rango/number, content words of an
article's first sentence) so the set is reproducible and not tuned to the ranking.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from boeflow.evals.retrieval import build_known_items
from boeflow.parse import parse_file

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    docs = [parse_file(p) for p in sorted((REPO / "samples" / "boe" / "documents").glob("*.xml"))]
    for row in build_known_items(docs):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
