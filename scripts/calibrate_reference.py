"""Calibrate the review's cross-check of a model translation against Apertium's
(``REFERENCE_MIN_CHRF`` in boeflow.review.checks; docs/review.md).

On the shipped DOGV dev pairs (samples/translation/pilar-dogv), the DOGV's own Valencian
(a correct, independent human translation, as a good model translation would be) is scored
with sentence chrF against Apertium's translation of the Spanish; so are wrong translations
made from it: the Spanish left untranslated, another line's translation, and the human
translation with its last sentence dropped. For each threshold: the share of correct
translations that pass and of wrong ones that are flagged.

    python scripts/calibrate_reference.py
"""

from __future__ import annotations

import random
import re
import statistics

from boeflow.core.settings import Settings
from boeflow.enrich.translate import apertium_for
from boeflow.evals.translation import SHIPPED_REFERENCE, SHIPPED_SOURCE, read_pairs
from boeflow.review.checks import REFERENCE_MIN_CHARS, chrf

SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-ZÀ-Ú«(])")


def main() -> None:
    source, human = read_pairs(SHIPPED_SOURCE, SHIPPED_REFERENCE)
    apertium = apertium_for(Settings(), "es", "va").translate(source)
    pairs = [(s, h, a) for s, h, a in zip(source, human, apertium, strict=True)
             if len(a) >= REFERENCE_MIN_CHARS]
    good = [chrf(h, a) for _, h, a in pairs]
    copied = [chrf(s, a) for s, _, a in pairs]
    shuffled = [a for _, _, a in pairs]
    random.Random(19).shuffle(shuffled)  # noqa: S311 (a fixed order, not a secret)
    other = [chrf(o, a) for (_, _, a), o in zip(pairs, shuffled, strict=True)]
    dropped: list[tuple[float, float]] = []  # (share of characters dropped, chrF)
    for _, h, a in pairs:
        parts = SENTENCE_END.split(h)
        if len(parts) >= 2:
            kept = " ".join(parts[:-1])
            dropped.append((1 - len(kept) / len(h), chrf(kept, a)))
    print(f"{len(pairs)} pairs (Apertium output of at least {REFERENCE_MIN_CHARS} characters); "
          f"{len(dropped)} with two or more sentences")
    print(f"chrF of the DOGV translation against Apertium's: median "
          f"{statistics.median(good):.1f}")
    print("threshold  correct pass  untranslated flagged  other line flagged  "
          "dropped sentence flagged (all / >=25% of the text)")
    for threshold in (40, 50, 55, 60, 65, 70):
        big = [c for share, c in dropped if share >= 0.25]
        print(f"{threshold:9d}  {sum(g >= threshold for g in good) / len(good):12.3f}  "
              f"{sum(c < threshold for c in copied) / len(copied):20.3f}  "
              f"{sum(o < threshold for o in other) / len(other):18.3f}  "
              f"{sum(c < threshold for _, c in dropped) / max(len(dropped), 1):10.3f} / "
              f"{sum(c < threshold for c in big) / max(len(big), 1):.3f} (n={len(big)})")


if __name__ == "__main__":
    main()
