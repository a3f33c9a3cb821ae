"""Vigilancia: named saved searches run over the day's items.

Configured in a TOML file (``BOEFLOW_DIGEST_WATCHLISTS_FILE``)::

    [[watchlist]]
    name = "DANA"
    keywords = ["DANA", "Depresión Aislada"]       # title or summary, accents/case ignored
    departments = ["Jefatura del Estado"]           # substring of the department
    rangos = ["Real Decreto-ley"]
    materias = ["Subvenciones"]
    query = "ayudas por los daños de la DANA"        # boeflow search's hybrid search
    recipients = ["alertas@example.org"]

An item matches when any criterion matches; ``why`` says which. The free-text ``query`` is run
through ``boeflow.search.Searcher.search`` (BM25 + kNN fused by RRF) restricted to the day.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from boeflow.digest import follow
from boeflow.digest.follow import RELATIONS, FollowRelation
from boeflow.digest.model import Digest, Item, WatchlistResult, WatchMatch
from boeflow.textnorm import fold

# (query, day) → BOE ids ranked by the hybrid search
QueryRunner = Callable[[str, date], list[str]]


class WatchlistError(ValueError):
    """The watchlist file is missing or invalid (one clear line)."""


class Watchlist(BaseModel):
    name: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    rangos: list[str] = Field(default_factory=list)
    materias: list[str] = Field(default_factory=list)
    query: str | None = None
    query_hits: int = Field(5, ge=1, le=50, description="top hybrid results kept")
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


def load_watchlists(path: Path | None) -> list[Watchlist]:
    if path is None:
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WatchlistError(f"watchlist file {path} does not exist "
                             "(BOEFLOW_DIGEST_WATCHLISTS_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise WatchlistError(f"watchlist file {path}: {exc}") from None
    try:
        lists = [Watchlist.model_validate(entry) for entry in data.get("watchlist", [])]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WatchlistError(f"watchlist file {path}: {'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from None
    names = [w.name for w in lists]
    if len(set(names)) != len(names):
        raise WatchlistError(f"watchlist file {path}: names must be unique")
    return lists


def _text(item: Item) -> str:
    parts = [item.title_es]
    if item.summary_es:
        parts += [item.summary_es.resumen, *item.summary_es.puntos_clave]
    return fold(" ".join(parts)).lower()


def run_watchlists(digest: Digest, watchlists: list[Watchlist],
                   records: dict[str, dict[str, Any]],
                   query: QueryRunner | None) -> list[WatchlistResult]:
    """Each watchlist's matches among the day's items, in the digest's order (query hits
    keep the hybrid ranking first)."""
    items = digest.all_items()
    section_of = {i.boe_id: s.code for s in digest.sections for d in s.departments
                  for i in (*d.items, *d.compact)}
    dept_of = {i.boe_id: d.name for s in digest.sections for d in s.departments
               for i in (*d.items, *d.compact)}
    results: list[WatchlistResult] = []
    for watch in watchlists:
        why: dict[str, list[str]] = {}
        if watch.query and query is not None:
            day_ids = {i.boe_id for i in items}
            for boe_id in [b for b in query(watch.query, digest.date) if b in day_ids][
                    :watch.query_hits]:
                why.setdefault(boe_id, []).append("búsqueda híbrida")
        keywords = [fold(k).lower() for k in watch.keywords]
        for item in items:
            reasons: list[str] = []
            text = _text(item)
            reasons += [f"palabra «{k}»" for k, f in zip(watch.keywords, keywords, strict=True)
                        if f and re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text)]
            dept = fold(dept_of.get(item.boe_id, "")).lower()
            reasons += [f"departamento «{d}»" for d in watch.departments
                        if fold(d).lower() in dept]
            reasons += [f"rango «{r}»" for r in watch.rangos
                        if item.rango and fold(r).lower() == fold(item.rango).lower()]
            materias = {fold(m).lower() for m in records.get(item.boe_id, {}).get("materias")
                        or []}
            reasons += [f"materia «{m}»" for m in watch.materias if fold(m).lower() in materias]
            reasons += follow.law_reasons(watch.law_id, watch.relations,
                                          records.get(item.boe_id, {}))
            if reasons:
                why.setdefault(item.boe_id, []).extend(reasons)
        by_id = {i.boe_id: i for i in items}
        matches = [WatchMatch(boe_id=b, title=by_id[b].title_es, section=section_of[b],
                              why=reasons) for b, reasons in why.items()]
        results.append(WatchlistResult(name=watch.name, criteria=watch.criteria(),
                                       matches=matches, recipients=len(watch.recipients)))
    return results
