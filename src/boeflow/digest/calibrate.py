"""Calibration of the watchlist query floors on a labelled set (docs/digest.md).

Every query of the set is run through the watchlists' own search (``query_evidence``: the
real BM25 and kNN of ``boeflow.index.search`` over the indexed documents, every day). A document
the set lists as relevant to the query is a *relevant* pair; *nonsense* queries (random
words that no watchlist would mean together) make *nonsense* pairs with whatever they
return; the rest are *other* pairs — in the shipped sets mostly documents on the same
subject (the DANA decrees share their title words), so they are reported, not counted as
errors. The chosen floor is the highest that keeps ``min_recall`` of the relevant pairs
while no nonsense pair matches: as strict as the set allows without missing what a reader
asked for.

``python -m boeflow.digest.calibrate`` prints the tables for the configured index and
model: run it on production's index with the production embedder to set
``BOEFLOW_DIGEST_WATCH_MIN_SIMILARITY``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from boeflow.evals.retrieval import LabelledQuery

# Random words: queries that mean nothing as a whole. No floor may let them match. (Generic
# BOE words, "orden ministerio real", do occur together in most items: a watchlist of them
# matches those items, by design of a word search.)
NONSENSE = (
    "bicicleta azul murciélago sinfonía",
    "zanahoria helicóptero violín",
    "lorem ipsum dolor sit amet",
    "pingüino volcán trompeta naranja",
    "queso manchego fútbol playa",
    "astronauta acuarela tortuga",
    "guitarra eléctrica chocolate invierno",
    "dinosaurio paraguas ajedrez",
)

Evidence = tuple[set[str], list[tuple[str, set[str]]], list[tuple[str, float]]]


@dataclass
class Row:
    floor: float
    recall: float  # share of the relevant pairs kept
    relevant: int
    other: int
    nonsense: int


@dataclass
class Calibration:
    measure: str  # "coverage" or "similarity"
    relevant: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    nonsense: list[float] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    chosen: Row | None = None

    def table(self) -> str:
        lines = [f"{self.measure}: {len(self.relevant)} relevant, {len(self.other)} other, "
                 f"{len(self.nonsense)} nonsense (query, document) pairs",
                 "floor  recall  matched: relevant  other  nonsense"]
        for row in self.rows:
            mark = "  <- chosen" if row is self.chosen else ""
            lines.append(f"{row.floor:5.2f}  {row.recall:6.3f}  {row.relevant:17d}  "
                         f"{row.other:5d}  {row.nonsense:8d}{mark}")
        return "\n".join(lines)


def _sweep(calibration: Calibration, floors: Sequence[float], min_recall: float
           ) -> Calibration:
    for floor in floors:
        kept = sum(1 for v in calibration.relevant if v >= floor)
        calibration.rows.append(Row(
            floor, kept / len(calibration.relevant) if calibration.relevant else 0.0, kept,
            sum(1 for v in calibration.other if v >= floor),
            sum(1 for v in calibration.nonsense if v >= floor)))
    good = [r for r in calibration.rows if r.recall >= min_recall and not r.nonsense]
    calibration.chosen = max(good, key=lambda r: r.floor) if good else None
    return calibration


def calibrate(evidence: Callable[[str, date | None], Evidence],
              labelled: Sequence[LabelledQuery], nonsense: Sequence[str] = NONSENSE,
              min_recall: float = 0.9) -> tuple[Calibration, Calibration | None]:
    """The coverage sweep (BM25) and, when the evidence has kNN results, the similarity
    sweep over the documents BM25 agrees on."""
    coverage = Calibration("coverage")
    similarity = Calibration("similarity")
    queries = [(q.query, {r.split("::")[0] for r in q.relevant}, False) for q in labelled]
    queries += [(text, set(), True) for text in nonsense]
    for text, relevant, senseless in queries:
        words, lexical, nearest = evidence(text, None)
        if not words:
            continue
        agreed = {doc for doc, found in lexical if found}
        for doc, found in lexical:
            _bucket(coverage, doc, relevant, senseless).append(len(found) / len(words))
        for doc, cosine in nearest:
            if doc in agreed:
                _bucket(similarity, doc, relevant, senseless).append(cosine)
    _sweep(coverage, [n / 20 for n in range(1, 21)], min_recall)
    if not (similarity.relevant or similarity.other or similarity.nonsense):
        return coverage, None
    return coverage, _sweep(similarity, [n / 20 for n in range(0, 20)], min_recall)


def _bucket(calibration: Calibration, doc: str, relevant: set[str],
            senseless: bool) -> list[float]:
    if senseless:
        return calibration.nonsense
    return calibration.relevant if doc in relevant else calibration.other


def main() -> None:  # pragma: no cover - a maintenance tool, exercised by the tests' calibrate()
    from boeflow.core.settings import get_settings
    from boeflow.digest.collect import query_evidence
    from boeflow.evals.retrieval import KNOWN_ITEMS, NATURAL_QUERIES, load_set
    from boeflow.index.client import es_session, names_for

    settings = get_settings()
    labelled = [*load_set(shipped=NATURAL_QUERIES), *load_set(shipped=KNOWN_ITEMS)]
    with es_session(settings) as client:
        coverage, similarity = calibrate(query_evidence(settings, client, names_for(settings)),
                                         labelled)
    print(coverage.table())
    print(similarity.table() if similarity else
          "similarity: no kNN evidence (smoke embedder or smoke index): queries are BM25 only")


if __name__ == "__main__":  # pragma: no cover
    main()
