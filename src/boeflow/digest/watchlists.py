"""Vigilancia: named saved searches run over the day's items.

Configured in a TOML file (``BOEFLOW_DIGEST_WATCHLISTS_FILE``)::

    [[watchlist]]
    name = "DANA"
    keywords = ["DANA", "Depresión Aislada"]       # title or summary, accents/case ignored
    departments = ["Jefatura del Estado"]           # substring of the department
    rangos = ["Real Decreto-ley"]
    materias = ["Subvenciones"]
    query = "ayudas por los daños de la DANA"        # boeflow search, limited to the day
    recipients = ["alertas@example.org"]

An item matches when any criterion matches; ``why`` says which. The free-text ``query`` is
run through ``boeflow.index.search.Searcher`` (``boeflow.digest.collect.hybrid_query``) and must
*mean* something (docs/digest.md, "Watchlists"): an item matches it when one of its passages
holds at least ``MIN_COVERAGE`` of the query's significant words (BM25, stopwords dropped,
accents and endings ignored), or — with a real embedding model only — when its nearest
passage has a cosine similarity of at least ``BOEFLOW_DIGEST_WATCH_MIN_SIMILARITY`` *and*
BM25 agrees (the item is among the query's BM25 results). With a smoke embedder the query is
BM25 only: random vectors' neighbours mean nothing.

The file is bounded (``MAX_*`` below, docs/limits.md): too many lists or entries, an entry
too long, an empty criterion, a control character in a name are refused at load time with
one line naming the watchlist.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from boeflow.core.errors import BoeflowError
from boeflow.core.textnorm import fold, stem_text
from boeflow.digest import follow
from boeflow.digest.follow import RELATIONS, FollowRelation
from boeflow.digest.model import Digest, Item, WatchlistResult, WatchMatch
from boeflow.index.search import MAX_QUERY_CHARS, rrf_fuse

# --- Bounds of a watchlist file (docs/limits.md) ------------------------------------------
MAX_FILE_BYTES = 1024 * 1024  # checked before parsing: a 100k-keyword file stops here
MAX_LISTS = 200  # [[watchlist]] tables per file (each may send one e-mail a day)
MAX_KEYWORDS = 100  # keywords per watchlist
MAX_ENTRIES = 50  # departments, rangos, materias per watchlist (each)
MAX_RECIPIENTS = 100  # recipients per watchlist
MAX_NAME_CHARS = 100
MAX_ENTRY_CHARS = 200  # one keyword, department, rango, materia or address
MAX_WATCH_QUERY_CHARS = 500  # the free-text query (boeflow search allows up to 2,000)
MAX_QUERY_HITS = 50
CRITERIA = ("keywords", "departments", "rangos", "materias", "query", "law")
assert MAX_WATCH_QUERY_CHARS <= MAX_QUERY_CHARS

# --- What a query match means (calibrated on the samples: docs/digest.md) -----------------
# Share of the query's significant words (stems, stopwords dropped) that one passage of the
# item (its title, heading and text) must hold for a BM25 match.
MIN_COVERAGE = 0.6
# Default cosine similarity floor of a kNN match (with BM25 agreement); a setting,
# BOEFLOW_DIGEST_WATCH_MIN_SIMILARITY, since it belongs to the embedding model.
DEFAULT_MIN_SIMILARITY = 0.6
# Documents asked from each search list per watchlist query (then cut to ``query_hits``).
QUERY_DEPTH = 50


class WatchlistError(BoeflowError, ValueError):
    """The watchlist file is missing or invalid (one clear line)."""


@dataclass(frozen=True)
class QueryHit:
    """One document a watchlist query matched, with the evidence."""

    boe_id: str
    matched: int  # significant query words found in the item's best passage
    words: int  # significant words of the query
    similarity: float | None = None  # cosine similarity of its nearest passage (kNN)

    @property
    def coverage(self) -> float:
        return self.matched / self.words if self.words else 0.0

    def reason(self) -> str:
        words = f"{self.matched} de {self.words} palabras"
        if self.similarity is None or self.coverage >= MIN_COVERAGE:
            return f"búsqueda: {words}"
        return f"búsqueda semántica: similitud {self.similarity:.2f}, {words}"


# (query, day or None for every day) → the documents that match it, best first
QueryRunner = Callable[[str, date | None], list[QueryHit]]


def significant_words(tokens: Iterable[str]) -> set[str]:
    """The stems of a query's tokens as analysed by the index (stopwords already dropped)."""
    return {stem for token in tokens for stem in stem_text(token).split()}


def passage_words(*texts: str) -> set[str]:
    return set(stem_text(" ".join(texts)).split())


def query_hits(words: set[str], lexical: Sequence[tuple[str, set[str]]],
               semantic: Sequence[tuple[str, float]], min_similarity: float | None
               ) -> list[QueryHit]:
    """The matching documents of one query, fused by RRF over the BM25 and kNN ranks.

    ``lexical``: BM25 results as (BOE id, stems of its best passage), best first;
    ``semantic``: kNN results as (BOE id, cosine similarity), best first, empty with a smoke
    embedder; ``min_similarity``: the kNN floor (None: kNN off)."""
    if not words:
        return []
    matched = {doc: len(words & passage) for doc, passage in lexical}
    similarity = dict(semantic)
    hits: dict[str, QueryHit] = {}
    for doc, count in matched.items():
        sim = similarity.get(doc) if min_similarity is not None else None
        hit = QueryHit(doc, count, len(words), sim)
        lexical_match = hit.coverage >= MIN_COVERAGE
        # kNN counts only above its floor and with BM25's agreement (doc in ``lexical``)
        semantic_match = sim is not None and min_similarity is not None \
            and sim >= min_similarity and count > 0
        if lexical_match or semantic_match:
            hits[doc] = hit
    order = rrf_fuse({"bm25": [d for d, _ in lexical if d in hits],
                      "knn": [d for d, _ in semantic if d in hits]})
    return [hits[doc] for doc, _ in order]


class Watchlist(BaseModel):
    name: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    rangos: list[str] = Field(default_factory=list)
    materias: list[str] = Field(default_factory=list)
    query: str | None = None
    query_hits: int = Field(5, ge=1, le=MAX_QUERY_HITS, description="top query matches kept")
    recipients: list[str] = Field(default_factory=list)
    # Follow a law (boeflow.digest.follow): BOE id, ELI or citation, and the relations.
    law: str | None = None
    relations: list[FollowRelation] = Field(default_factory=lambda: list(RELATIONS))
    law_id: str | None = Field(None, description="the followed law's BOE id (resolved)")

    @model_validator(mode="after")
    def _resolve_law(self) -> Watchlist:
        self.law_id = follow.resolve(self.law) if self.law else None
        return self

    def criteria(self) -> list[str]:
        out = [f"palabras: {', '.join(self.keywords)}"] if self.keywords else []
        out += [f"departamentos: {', '.join(self.departments)}"] if self.departments else []
        out += [f"rangos: {', '.join(self.rangos)}"] if self.rangos else []
        out += [f"materias: {', '.join(self.materias)}"] if self.materias else []
        out += [f"búsqueda: «{self.query}»"] if self.query else []
        out += [follow.describe(self.law, self.law_id, self.relations)] if self.law and \
            self.law_id else []
        return out


_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def shown(text: str, limit: int = 60) -> str:
    """``text`` for an error line: control and invisible characters escaped (a CR/LF in a
    name never splits the line), cut to ``limit`` characters."""
    out = "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _BAD_CATEGORIES else ch
                  for ch in text[:limit])
    return f"«{out}{'…' if len(text) > limit else ''}»"


def _one_line(value: str) -> bool:
    return not any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in value)


def _check_entries(label: str, key: str, value: Any, most: int) -> list[str]:
    if not isinstance(value, list):
        raise WatchlistError(f"{label}: {key} must be a list of strings")
    if not value:
        raise WatchlistError(f"{label}: {key} is empty (remove it or give at least one entry)")
    if len(value) > most:
        raise WatchlistError(f"{label}: {key} has {len(value)} entries, at most {most}")
    entries: list[str] = []
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, str):
            raise WatchlistError(f"{label}: {key} entry {n} is not a string")
        text = entry.strip()
        if not re.search(r"\w", text):
            raise WatchlistError(f"{label}: {key} entry {n} ({shown(entry)}) is empty or has no "
                                 "letters or digits: it would match every item or none")
        if len(text) > MAX_ENTRY_CHARS:
            raise WatchlistError(f"{label}: {key} entry {n} is {len(text)} characters long, "
                                 f"at most {MAX_ENTRY_CHARS}")
        if not _one_line(text):
            raise WatchlistError(f"{label}: {key} entry {n} ({shown(entry)}) contains a "
                                 "control character")
        entries.append(text)
    return entries


def _check(raw: Any, number: int, source: str) -> Watchlist:
    """One [[watchlist]] table, validated with one line naming it (its number and name)."""
    label = f"{source}: watchlist #{number}"
    if not isinstance(raw, dict):
        raise WatchlistError(f"{label} is not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise WatchlistError(f"{label} has no name")
    label = f"{label} {shown(name)}"
    if not _one_line(name):
        raise WatchlistError(f"{label}: the name contains a control character (CR, LF, tab…); "
                             "use one line of text")
    if len(name) > MAX_NAME_CHARS:
        raise WatchlistError(f"{label}: the name is {len(name)} characters long, at most "
                             f"{MAX_NAME_CHARS}")
    data = dict(raw)
    data["name"] = name.strip()
    for key, most in (("keywords", MAX_KEYWORDS), ("departments", MAX_ENTRIES),
                      ("rangos", MAX_ENTRIES), ("materias", MAX_ENTRIES),
                      ("recipients", MAX_RECIPIENTS)):
        if key in data:
            data[key] = _check_entries(label, key, data[key], most)
    bad = [a for a in data.get("recipients", []) if "@" not in a or " " in a]
    if bad:
        raise WatchlistError(f"{label}: recipient {shown(bad[0])} is not an e-mail address")
    if "query" in data:
        query = data["query"]
        if not isinstance(query, str):
            raise WatchlistError(f"{label}: query must be a string")
        query = " ".join(query.split())
        if not re.search(r"\w", query):
            raise WatchlistError(f"{label}: query is empty (remove it or give some words)")
        if len(query) > MAX_WATCH_QUERY_CHARS:
            raise WatchlistError(f"{label}: query is {len(query)} characters long, at most "
                                 f"{MAX_WATCH_QUERY_CHARS}")
        if not _one_line(query):
            raise WatchlistError(f"{label}: query contains a control character")
        data["query"] = query
    if not any(key in data for key in CRITERIA):
        raise WatchlistError(f"{label} has no criterion: give keywords, departments, rangos, "
                             "materias, query or law")
    try:
        return Watchlist.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WatchlistError(f"{label}: {'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from None


def load_watchlists(path: Path | None) -> list[Watchlist]:
    if path is None:
        return []
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise WatchlistError(f"watchlist file {path} is {size} bytes, at most "
                                 f"{MAX_FILE_BYTES} (BOEFLOW_DIGEST_WATCHLISTS_FILE)")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WatchlistError(f"watchlist file {path} does not exist "
                             "(BOEFLOW_DIGEST_WATCHLISTS_FILE)") from None
    except UnicodeDecodeError:
        raise WatchlistError(f"watchlist file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise WatchlistError(f"watchlist file {path}: {exc}") from None
    entries = data.get("watchlist", [])
    if not isinstance(entries, list):
        raise WatchlistError(f"watchlist file {path}: use [[watchlist]] tables")
    if len(entries) > MAX_LISTS:
        raise WatchlistError(f"watchlist file {path}: {len(entries)} watchlists, at most "
                             f"{MAX_LISTS}")
    lists = [_check(entry, n, f"watchlist file {path}")
             for n, entry in enumerate(entries, start=1)]
    seen: set[str] = set()
    for n, watch in enumerate(lists, start=1):
        if watch.name in seen:
            raise WatchlistError(f"watchlist file {path}: watchlist #{n} {shown(watch.name)}: "
                                 "names must be unique")
        seen.add(watch.name)
    return lists


def _text(item: Item) -> str:
    parts = [item.title_es]
    if item.summary_es:
        parts += [item.summary_es.resumen, *item.summary_es.puntos_clave]
    return fold(" ".join(parts)).lower()


_WORD_ONLY = re.compile(r"\w+")


def run_watchlists(digest: Digest, watchlists: list[Watchlist],
                   records: dict[str, dict[str, Any]],
                   query: QueryRunner | None) -> list[WatchlistResult]:
    """Each watchlist's matches among the day's items, in the digest's order (query matches
    first, best first). A failed query is one ``WatchlistError`` naming its watchlist."""
    items = digest.all_items()
    section_of = {i.boe_id: s.code for s in digest.sections for d in s.departments
                  for i in (*d.items, *d.compact)}
    dept_of = {i.boe_id: fold(d.name).lower() for s in digest.sections for d in s.departments
               for i in (*d.items, *d.compact)}
    # Each item's folded text, words, rango and materias, computed once for every list.
    texts = {i.boe_id: _text(i) for i in items}
    words = {b: set(_WORD_ONLY.findall(t)) for b, t in texts.items()}
    rangos = {i.boe_id: fold(i.rango).lower() for i in items if i.rango}
    materias = {i.boe_id: {fold(m).lower() for m in records.get(i.boe_id, {}).get("materias")
                           or []} for i in items}
    by_id = {i.boe_id: i for i in items}
    results: list[WatchlistResult] = []
    for watch in watchlists:
        why: dict[str, list[str]] = {}
        if watch.query and query is not None:
            try:
                hits = query(watch.query, digest.date)
            except BoeflowError as exc:
                raise WatchlistError(f"watchlist {shown(watch.name)}: its query failed: "
                                     f"{exc}") from None
            for hit in [h for h in hits if h.boe_id in by_id][:watch.query_hits]:
                why.setdefault(hit.boe_id, []).append(hit.reason())
        folded_kw = [(k, fold(k).lower()) for k in watch.keywords]
        # One-word keywords are looked up in the item's word set; others by a regex.
        single = {f for _, f in folded_kw if _WORD_ONLY.fullmatch(f)}
        phrase = {f: re.compile(rf"(?<!\w){re.escape(f)}(?!\w)") for _, f in folded_kw
                  if f not in single}
        depts = [(d, fold(d).lower()) for d in watch.departments]
        dept_hits: dict[str, list[str]] = {}
        want_rangos = {fold(r).lower(): r for r in watch.rangos}
        want_materias = {fold(m).lower(): m for m in watch.materias}
        for item in items:
            boe_id = item.boe_id
            found = single & words[boe_id] if single else set()
            reasons = [f"palabra «{k}»" for k, f in folded_kw
                       if (f in found if f in single else phrase[f].search(texts[boe_id]))]
            dept = dept_of.get(boe_id, "")
            if depts:
                if dept not in dept_hits:
                    dept_hits[dept] = [f"departamento «{d}»" for d, f in depts if f in dept]
                reasons += dept_hits[dept]
            if boe_id in rangos and rangos[boe_id] in want_rangos:
                reasons.append(f"rango «{want_rangos[rangos[boe_id]]}»")
            reasons += [f"materia «{m}»" for f, m in want_materias.items()
                        if f in materias[boe_id]]
            reasons += follow.law_reasons(watch.law_id, watch.relations,
                                          records.get(boe_id, {}))
            if reasons:
                why.setdefault(boe_id, []).extend(reasons)
        matches = [WatchMatch(boe_id=b, title=by_id[b].title_es, section=section_of[b],
                              why=reasons) for b, reasons in why.items()]
        results.append(WatchlistResult(name=watch.name, criteria=watch.criteria(),
                                       matches=matches, recipients=len(watch.recipients)))
    return results
