"""Retrieval evaluation: Recall@1/5/10 and MRR@10 per search mode over a labelled set.

A set is JSONL, one ``{"query": "...", "relevant": ["BOE-A-…", "BOE-A-…::Artículo 14", …]}``
per line. A relevant entry is a BOE id (any chunk of that document counts) or
``ID::HEADING`` (a chunk of that document whose heading starts with HEADING). Public Spanish
legal QA sets can be converted to this format and run with ``--set FILE``.

Three sets ship with boeflow: ``known_items`` (title and first-sentence queries, built by
:func:`build_known_items`) and ``natural_queries`` (paraphrases a user would type, written
by hand over the samples), and ``citations`` (BOE ids, ELI URIs, norm citations with their
abbreviations and acronyms, resolutions by date and organ, corrections of errors, citations
inside free text: the relevant entry is the cited norm, or the document that modifies it
when the cited norm itself is not indexed). Queries whose relevant entries are all BOE ids
are run through the document search users see (``Searcher.search``: collapsed per
document); the others through the chunk ranking. Recall@k is the share of a query's
relevant entries found in the top k (at most k of them can be), averaged over queries;
MRR@10 uses the first relevant result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from boeflow.core.textnorm import fold
from boeflow.core.types import ParsedDocument
from boeflow.index.search import MODES, ChunkHit, Filters, Mode, Searcher

KS = (1, 5, 10)
KNOWN_ITEMS = "known_items.jsonl"
NATURAL_QUERIES = "natural_queries.jsonl"
CITATION_QUERIES = "citation_queries.jsonl"
SHIPPED_SETS = {"known_items": KNOWN_ITEMS, "natural_queries": NATURAL_QUERIES,
                "citations": CITATION_QUERIES}


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    relevant: tuple[str, ...]
    origin: str = ""


def load_set(path: Path | None = None, shipped: str = KNOWN_ITEMS) -> list[LabelledQuery]:
    """A labelled set from ``path``, or one of the shipped sets (``SHIPPED_SETS``)."""
    if path is None:
        text = resources.files("boeflow").joinpath("data", shipped).read_text("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(LabelledQuery(str(row["query"]), tuple(row["relevant"]),
                                       str(row.get("origin", ""))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number} of the set is not "
                             f'{{"query": ..., "relevant": [...]}}: {exc}') from None
    return items


def matches(relevant: str, hit: ChunkHit) -> bool:
    doc_id, _, heading = relevant.partition("::")
    if hit.doc_id != doc_id:
        return False
    if not heading:
        return True
    have, want = fold(hit.heading).rstrip(". "), fold(heading).rstrip(". ")
    # "Artículo 1" must not match "Artículo 14": the next character may not be a digit.
    return have == want or (have.startswith(want) and not have[len(want)].isdigit())


def _ranked_entries(searcher: Searcher, item: LabelledQuery, mode: Mode,
                    depth: int) -> list[set[str]]:
    """For each result rank (1..depth), the relevant entries that result satisfies."""
    if all("::" not in r for r in item.relevant):
        docs = searcher.search(item.query, mode, Filters(), size=depth, details=False)
        return [{r for r in item.relevant if r == doc.doc_id} for doc in docs]
    hits = searcher.search_chunks(item.query, mode, Filters(), depth=depth * 5)
    return [{r for r in item.relevant if matches(r, hit)} for hit in hits][:depth]


def evaluate(searcher: Searcher, queries: Sequence[LabelledQuery],
             modes: Iterable[Mode] = MODES) -> dict[str, dict[str, float]]:
    report: dict[str, dict[str, float]] = {}
    depth = max(KS)
    for mode in modes:
        recall_at = {k: 0.0 for k in KS}
        reciprocal = 0.0
        for item in queries:
            ranked = _ranked_entries(searcher, item, mode, depth)
            wanted = set(item.relevant)
            for k in KS:
                found = set().union(*ranked[:k]) if ranked[:k] else set()
                recall_at[k] += len(found & wanted) / min(len(wanted), k)
            first = next((n for n, hit in enumerate(ranked, start=1) if hit), None)
            if first is not None:
                reciprocal += 1.0 / first
        n = max(len(queries), 1)
        report[mode] = {**{f"recall@{k}": recall_at[k] / n for k in KS},
                        "mrr@10": reciprocal / n, "queries": float(len(queries))}
    return report


_RANGO_PREFIX = re.compile(
    r"^(Real Decreto(?:-ley| Legislativo)?|Ley(?: Orgánica)?|Orden|Resolución|Corrección de "
    r"errores de la|Corrección de errores del)\b[^,]*,\s*de \d+ de \w+(?: de \d{4})?,?\s*", re.I)
_WORD = re.compile(r"\w+", re.U)
_STOP = frozenset((
    "a", "al", "ante", "bajo", "con", "contra", "de", "del", "desde", "durante", "e", "el",
    "en", "entre", "hacia", "hasta", "la", "las", "lo", "los", "mediante", "o", "para",
    "por", "que", "se", "según", "sin", "sobre", "su", "sus", "tras", "un", "una", "unos",
    "unas", "y", "ya", "no", "ni", "como", "cual", "cuando", "donde", "este", "esta",
    "estos", "estas", "ese", "esa", "dicho", "dicha", "será", "serán", "ser", "sido",
))


def _content_words(text: str, limit: int) -> str:
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 2]
    return " ".join(words[:limit])


def build_known_items(docs: Sequence[ParsedDocument], articles_per_doc: int = 3) -> list[
        dict[str, Any]]:
    """A known-item set from documents: a query from each title (rango and number removed),
    and for a few articles a paraphrase from the content words of their first sentence."""
    rows: list[dict[str, Any]] = []
    for doc in docs:
        title_query = _content_words(_RANGO_PREFIX.sub("", doc.title), 12)
        if title_query:
            rows.append({"query": title_query, "relevant": [doc.id], "origin": "title"})
        articles = [u for u in doc.units if u.kind == "articulo" and u.text.strip()]
        step = max(len(articles) // (articles_per_doc + 1), 1)
        picked = 0
        for unit in articles[step - 1::step] + articles:
            if picked >= articles_per_doc:
                break
            body = unit.text.strip()
            if body.startswith(unit.heading):
                body = body[len(unit.heading):].lstrip(" .\n")
            sentence = re.split(r"(?<=[.;:])\s", body, maxsplit=1)[0]
            query = _content_words(sentence, 10)
            relevant = f"{doc.id}::{unit.heading.rstrip('. ')}"
            if len(query.split()) < 4 or any(relevant in r["relevant"] for r in rows):
                continue
            rows.append({"query": query, "relevant": [relevant], "origin": "article-sentence"})
            picked += 1
    return rows
