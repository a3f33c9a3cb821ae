"""``boeflow eval review``: how well the automatic review catches unfaithful summaries.

A set is JSONL, one case a line::

    {"doc": "BOE-A-2024-23543" | "path/to/file.xml", "summary": {...Summary fields...},
     "faithful": true | false, "perturbation": "date|amount|percent|boe_id|article|citation|
     deadline|negation|department|none"}

Each case runs exactly the review production runs on a summary (``review_summary`` against
the document as the model saw it, with the limits of the document's summary kind), and a
case counts as *flagged* when that review says ``needs_attention``. The report gives, per
perturbation type, how many unfaithful summaries were flagged (recall) and how many faithful
ones were flagged (false positives).

The shipped set (``data/review_set.jsonl``) is built by ``build_set`` from the recorded
samples: for each document a faithful summary made only of the document's own sentences
(title, the sentences richest in dates, amounts, percentages, articles, deadlines and
citations, the entry-into-force clause, the norms it cites) and one perturbed copy per
applicable perturbation, each changing one fact to a value the document does not contain.
Regenerate it with ``python -m boeflow.evals.review build``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from boeflow.core.paths import package_file
from boeflow.core.settings import Settings
from boeflow.enrich.schema import (
    MAX_ITEM_CHARS,
    Summary,
    fit_summary,
    length_policy,
    trim_text,
)
from boeflow.review.checks import review_summary
from boeflow.review.facts import (
    AMOUNT,
    ARTICLE,
    BOE_ID,
    CITATION,
    DEADLINE,
    ORGANISM,
    PERCENT,
    WORD_DATE,
    FactIndex,
    extract_facts,
)
from boeflow.review.source import SourceDocument, load_source

Perturbation = Literal["date", "amount", "percent", "boe_id", "article", "citation",
                       "deadline", "negation", "department", "none"]
PERTURBATIONS: tuple[Perturbation, ...] = ("date", "amount", "percent", "boe_id", "article",
                                           "citation", "deadline", "negation", "department")
TARGETED: tuple[Perturbation, ...] = ("date", "amount", "percent", "boe_id", "article",
                                      "citation")
SHIPPED_SET = package_file("boeflow.evals", "data", "review_set.jsonl")


Split = Literal["tuning", "held_out"]
# The documents the review's rules and thresholds were tuned on (the set shipped before
# issue 20); every other document's cases are held out and only reported.
TUNING_DOCS = frozenset({
    "BOE-A-1978-31229", "BOE-A-2020-4859", "BOE-A-2020-4866", "BOE-A-2020-4867",
    "BOE-A-2020-4871", "BOE-A-2024-22928", "BOE-A-2024-23543", "BOE-A-2024-23620",
    "BOE-A-2024-24097", "BOE-A-2024-24105", "BOE-A-2024-25801", "BOE-A-2024-26250",
    "BOE-A-2024-27187", "BOE-A-2025-13788", "BOE-A-2025-9743", "BOE-B-2020-13284",
    "BOE-B-2024-43491", "BOE-B-2024-43583", "BOE-B-2024-45529", "BOE-B-2025-19396",
    "BOE-B-2025-20771"})


def split_of(doc_id: str) -> Split:
    return "tuning" if doc_id in TUNING_DOCS else "held_out"


class ReviewCase(BaseModel):
    doc: str
    summary: dict[str, Any]
    faithful: bool
    perturbation: Perturbation = "none"
    note: str = Field("", description="what was changed (perturbed cases)")
    style: Literal["extractive", "paraphrase"] = Field(
        "extractive", description="faithful summary made of source sentences, or rewritten")
    split: Split = Field("tuning", description="tuning: used to tune the review; held_out: "
                         "reported only")


class SetError(ValueError):
    """A line of the set is not a valid case: the message names the line."""


def load_cases(path: Path) -> list[ReviewCase]:
    cases = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            cases.append(ReviewCase.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise SetError(f"{path}:{number}: {where}: {first['msg']}") from None
    if not cases:
        raise SetError(f"{path}: no cases")
    return cases


def _limit(doc: SourceDocument, settings: Settings) -> int:
    return length_policy(settings, doc.is_short_notice).resumen_max


def review_case(case: ReviewCase, doc: SourceDocument,
                settings: Settings) -> tuple[bool, list[str]]:
    """(flagged, reasons) by the production review of a summary of ``doc``: the summary is
    fitted to its mode's length policy first, as production stores it."""
    policy = length_policy(settings, doc.is_short_notice)
    try:
        fields = fit_summary(Summary.model_validate(case.summary), policy).model_dump()
        status, errors = "ok", []
    except ValidationError as exc:  # an invalid summary is reviewed as production would
        fields = None
        status, errors = "failed", [str(exc.errors()[0]["msg"])]
    review = review_summary(fields=fields, raw_text=json.dumps(case.summary, ensure_ascii=False),
                            status=status, errors=errors, source_text=doc.review_text(),
                            resumen_max_chars=policy.resumen_max,
                            resumen_min_chars=policy.resumen_min, max_points=policy.max_items,
                            source=doc.anchor_source(), language="es")
    return review.needs_attention, list(review.reasons)


@dataclass
class EvalReport:
    cases: list[dict[str, Any]] = field(default_factory=list)

    def by_perturbation(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for case in self.cases:
            row = table.setdefault(case["perturbation"], {"n": 0, "flagged": 0})
            row["n"] += 1
            row["flagged"] += int(case["flagged"])
        return dict(sorted(table.items()))

    def false_positive_rate(self) -> float:
        faithful = [c for c in self.cases if c["faithful"]]
        return sum(c["flagged"] for c in faithful) / len(faithful) if faithful else 0.0

    def recall(self, perturbation: str) -> float | None:
        rows = [c for c in self.cases if not c["faithful"] and c["perturbation"] == perturbation]
        return sum(c["flagged"] for c in rows) / len(rows) if rows else None

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "by_perturbation": self.by_perturbation(),
                "false_positive_rate": round(self.false_positive_rate(), 4)}


def evaluate(cases: Sequence[ReviewCase], settings: Settings,
             loader: Callable[[str], SourceDocument] | None = None,
             split: Split | None = None) -> EvalReport:
    """Review every case (of ``split`` only, when given). ``doc`` is read once per
    document: a path from that file, a BOE id from the raw store (then the samples)."""
    load = loader or (lambda ref: load_source(settings, ref))
    docs: dict[str, SourceDocument] = {}
    report = EvalReport()
    for line, case in enumerate(cases, start=1):
        if split is not None and case.split != split:
            continue
        if case.doc not in docs:
            docs[case.doc] = load(case.doc)
        flagged, reasons = review_case(case, docs[case.doc], settings)
        report.cases.append({"line": line, "doc": case.doc, "faithful": case.faithful,
                             "perturbation": case.perturbation, "flagged": flagged,
                             "split": case.split, "style": case.style, "reasons": reasons})
    return report


# --- building the shipped set ---------------------------------------------------------------

_SENTENCE_SPLIT = re.compile(r"(?<=[.;])\s+(?=[A-ZÁÉÍÓÚÑ«(])|\n+")
_FACT_PRIORITY = ("percent", "amount", "article", "deadline", "boe_id", "citation", "date")
_AUDIENCE = re.compile(r"\b(?:personas|beneficiari|solicitantes|afectad|titular|mutualistas|"
                       r"empresas|trabajador|funcionari|alumn|estudiantes|agricultores|"
                       r"deudor|acreedor|ciudadan|interesad)", re.IGNORECASE)
_IN_FORCE = re.compile(r"entrar[áa] en vigor|surtir[áa] efectos|producir[áa] efectos",
                       re.IGNORECASE)
OTHER_ORGANISMS = ("Ministerio de Defensa", "Ministerio de Cultura",
                   "Universidad de Salamanca", "Consejería de Sanidad",
                   "Ministerio de Igualdad")
_WORD_SWAP = {"un": "tres", "una": "tres", "uno": "tres", "dos": "cinco", "tres": "seis",
              "cinco": "ocho", "diez": "quince", "quince": "veinte", "veinte": "treinta",
              "treinta": "cuarenta", "seis": "nueve", "cuatro": "siete", "cincuenta": "sesenta",
              "veinticinco": "cuarenta", "cuarenta": "setenta", "sesenta": "ochenta",
              "cien": "noventa"}


def _sentences(doc: SourceDocument) -> list[str]:
    found = []
    for raw in _SENTENCE_SPLIT.split(doc.text):
        sentence = " ".join(raw.split())
        if (40 <= len(sentence) <= 420 and "|" not in sentence and not sentence.isupper()
                and sentence not in found):
            found.append(sentence)
    return found


def faithful_summary(doc: SourceDocument, settings: Settings,
                     exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An extractive summary: every sentence is the document's own (or its identifier);
    ``exclude``: sentences another summary of the same document already used."""
    sentences = [s for s in _sentences(doc) if s not in exclude]
    limit = _limit(doc, settings)
    title = " ".join(doc.title.split())
    resumen = title if 40 <= len(title) <= limit else next(
        (s for s in sentences if len(s) <= limit), title[:limit])
    kinds_of = {s: {f.kind for f in extract_facts(s)} for s in sentences}
    points: list[str] = []
    covered: set[str] = set()
    for kind in _FACT_PRIORITY:
        if len(points) == 3:
            break
        if kind in covered:
            continue
        choice = next((s for s in sentences if kind in kinds_of[s] and s not in points
                       and s != resumen), None)
        if choice:
            points.append(choice)
            covered |= kinds_of[choice]
    for sentence in sentences:
        if len(points) >= 2:
            break
        if sentence not in points and sentence != resumen:
            points.append(sentence)
    rest = [s for s in sentences if s not in points and s != resumen]
    audience = next((s for s in rest if _AUDIENCE.search(s)), None)
    dates = [s for s in rest if s != audience and kinds_of[s] & {"date", "deadline"}][:2]
    in_force = next((s for s in sentences if _IN_FORCE.search(s)), "No consta.")
    citations: list[str] = []
    for match in CITATION.finditer(doc.text):
        text = " ".join(match.group(0).split())
        if text not in citations:
            citations.append(text)
    return Summary.model_validate({
        "resumen": resumen,
        "puntos_clave": [*(points or [resumen]), f"Identificador BOE: {doc.id}."],
        "a_quien_afecta": audience or (doc.department or title)[:MAX_ITEM_CHARS],
        "plazos_y_fechas": dates,
        "entrada_en_vigor": in_force[:MAX_ITEM_CHARS],
        "normas_afectadas": citations[:3],
    }).model_dump()


# Rewrites in the way an LLM paraphrases a BOE text: modal and passive forms, connectors,
# numbers in words as digits, amounts with the euro sign, negations worded differently.
_REWRITES: tuple[tuple[str, str], ...] = (
    (r"\bno ser[áa] necesario\b", "no hará falta"),
    (r"\bno podr[áa]n\b", "en ningún caso podrán"),
    (r"\bno podr[áa]\b", "en ningún caso podrá"),
    (r"\bno se (\w+)", r"tampoco se \1"),
    (r"\bdeber[áa]n\b", "tendrán que"),
    (r"\bdeber[áa]\b", "tendrá que"),
    (r"\bpodr[áa]n\b", "pueden"),
    (r"\bser[áa]n\b", "son"),
    (r"\bser[áa] de\b", "es de"),
    (r"\bmediante\b", "a través de"),
    (r"\b[Aa]simismo,?\s", "Además, "),
    (r"\bconforme a\b", "de acuerdo con"),
    (r"\bcon cargo a\b", "a cargo de"),
    (r"\bse establece\b", "queda establecido"),
    (r"\bse aprueba\b", "queda aprobado"),
    (r"(\d[\d.]*(?:,\d+)?) euros\b", r"\1 €"),
)
_WORD_NUMBERS = {"cinco": "5", "diez": "10", "quince": "15", "veinte": "20", "treinta": "30",
                 "dos": "2", "tres": "3", "seis": "6", "siete": "7", "cuatro": "4"}
_TITLE_VERB = re.compile(r"^(.*?),?\s+por (?:la|el|los|las) que se (\w+)[\s,]+", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:no (?:se )?(?:podr|deber|ser|exig|requier|tendr)\w*|"
                      r"en ningún caso|sin que)\b", re.IGNORECASE)


def _rewrite(text: str) -> str:
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text, count=1)
    for word, digits in _WORD_NUMBERS.items():
        text = re.sub(rf"\b{word} (d[ií]as|meses|años)\b", rf"{digits} \1", text)
    return text[:1].upper() + text[1:]


def paraphrase_summary(summary: dict[str, Any], doc: SourceDocument, settings: Settings,
                       long: bool) -> dict[str, Any]:
    """A faithful summary rewritten the way an LLM paraphrases (every fact kept): the title
    as a sentence, points reordered and reworded, numbers as digits, a true negation of the
    source reworded; ``long``: a resumen of several sentences (longer than a short notice's
    policy: it is trimmed, never flagged)."""
    title = " ".join(doc.title.split()).rstrip(".")
    verb = _TITLE_VERB.match(title)
    lead = (f"{verb.group(1)} {verb.group(2)} {title[verb.end():]}" if verb else title)
    points = [_rewrite(p) for p in summary["puntos_clave"] if not p.startswith("Identificador")]
    negated = next((s for s in _sentences(doc) if _NEGATED.search(s) and len(s) <= 300
                    and s not in summary["puntos_clave"]), None)
    if negated:
        points.append(_rewrite(negated))
    points = [*reversed(points), f"El documento se publica con el identificador {doc.id}."]
    resumen = lead[:1].upper() + lead[1:] + "."
    if len(resumen) < 60 and points:
        resumen = f"{resumen} {points[0]}"
    if long:
        extra = " ".join(points[:3])
        resumen = f"{resumen} En concreto, {extra[:1].lower()}{extra[1:]}"
    in_force = summary["entrada_en_vigor"]
    if re.search(r"día siguiente al de su publicación", in_force):
        in_force = "Entra en vigor al día siguiente de su publicación en el Boletín Oficial " \
                   "del Estado."
    return Summary.model_validate({
        "resumen": resumen[:2000],
        "puntos_clave": [p[:MAX_ITEM_CHARS] for p in points[:12]],
        "a_quien_afecta": _rewrite(summary["a_quien_afecta"])[:MAX_ITEM_CHARS],
        "plazos_y_fechas": [_rewrite(d)[:MAX_ITEM_CHARS] for d in summary["plazos_y_fechas"]],
        "entrada_en_vigor": in_force[:MAX_ITEM_CHARS],
        "normas_afectadas": summary["normas_afectadas"],
    }).model_dump()


def _texts(summary: dict[str, Any]) -> Iterable[tuple[str, int | None, str]]:
    for name, value in summary.items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield name, i, str(item)
        else:
            yield name, None, str(value)


def _replace(summary: dict[str, Any], name: str, index: int | None, text: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(summary))
    if index is None:
        copy[name] = text
    else:
        copy[name][index] = text
    return copy


def _unsupported(text: str, kind: str, index: FactIndex) -> bool:
    facts = [f for f in extract_facts(text) if f.kind == kind]
    return bool(facts) and not all(index.supports(f) for f in facts)


def _swap_number(value: str, step: int) -> str:
    digits = re.sub(r"\D", "", value)
    return str(int(digits) + step) if digits else value


def _candidates(kind: Perturbation, match: re.Match[str]) -> Iterable[str]:
    """Replacements of the matched fact by another value of the same kind."""
    text = match.group(0)
    if kind == "date":
        day = int(match.group(1))
        for step in (1, 2, 3, -1, 5, 9):
            new = day + step
            if 1 <= new <= 28:
                yield text.replace(match.group(1), str(new), 1)
    elif kind in ("amount", "percent"):
        number = match.group(1) or (match.group(3) if kind == "amount" else None) or ""
        if number.lower() in _WORD_SWAP:
            yield text.replace(number, _WORD_SWAP[number.lower()], 1)
        for factor in (2, 3, 5):
            plain = number.replace(".", "").replace(",", "")
            if plain.isdigit():
                yield text.replace(number, f"{int(plain) * factor:,}".replace(",", "."), 1)
    elif kind == "boe_id":
        head, _, tail = text.rpartition("-")
        for step in (7, 13, 101):
            yield f"{head}-{int(tail) + step}"
    elif kind == "article":
        base = re.match(r"\d+", match.group(1))
        if base:
            for step in (3, 7, 11):
                yield text.replace(base.group(0), str(int(base.group(0)) + step), 1)
    elif kind == "citation":
        number = match.group(2)
        first = re.search(r"\d+", number)
        if first:
            for step in (1, 2, 5):
                changed = number.replace(first.group(0), str(int(first.group(0)) + step), 1)
                yield text.replace(number, changed)
    elif kind == "deadline":
        count = match.group(1)
        if count.isdigit():
            for step in (5, 10, 3):
                yield text.replace(count, str(int(count) + step), 1)
        elif count.lower() in _WORD_SWAP:
            swap = _WORD_SWAP[count.lower()]
            yield text.replace(count, swap if count.islower() else swap.capitalize(), 1)


_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": WORD_DATE, "amount": AMOUNT, "percent": PERCENT, "boe_id": BOE_ID,
    "article": ARTICLE, "citation": CITATION, "deadline": DEADLINE, "department": ORGANISM}


_BOILERPLATE = re.compile(r"^(?:El documento se publica con el identificador|Identificador BOE)")


def perturb(summary: dict[str, Any], kind: Perturbation, doc: SourceDocument,
            index: FactIndex, resumen_limit: int | None = None
            ) -> tuple[dict[str, Any], str] | None:
    """A copy of ``summary`` with one fact of ``kind`` changed to a value the document does
    not contain, and a note of the change; None when the summary has no such fact. With
    ``resumen_limit``, only the part of the resumen its length policy keeps is changed."""
    if resumen_limit is not None:
        kept = len(trim_text(summary["resumen"], resumen_limit))
        summary = {**summary, "resumen": summary["resumen"][:kept]}
    if kind == "negation":
        # A negation dropped ("no podrán" → "podrán"), else one added before a modal
        # ("podrán" → "no podrán") or a passive ("se establece" → "no se establece").
        for name, i, text in _texts(summary):
            match = re.search(r"\b[Nn]o (?=(?:se )?(?:podr|deber|ser|tendr|exig|requier|"
                              r"puede|pueden|debe|deben)\w*\b)", text)
            if name != "entrada_en_vigor" and match and "consta" not in text[match.end():][:8]:
                new = text[:match.start()] + text[match.end():]
                if match.group(0)[0] == "N":
                    new = new[:match.start()] + new[match.start()].upper() + \
                        new[match.start() + 1:]
                return _replace(summary, name, i, new), f"{name}: «{match.group(0)}» quitado"
        for where in (r"\b(?<!no )(?=(?:podrán|deberán|podrá|deberá|tendrán|tendrá)\b)",
                      r"\bse (?=\w+[ae]n?\b)"):
            for name, i, text in _texts(summary):
                match = re.search(where, text)
                if name != "entrada_en_vigor" and match and not _BOILERPLATE.match(text) \
                        and not re.search(
                        r"\bno\s*$", text[:match.start()]):
                    new = text[:match.start()] + "no " + text[match.start():]
                    return _replace(summary, name, i, new), \
                        f"{name}: negado en la posición {match.start()}"
        return None
    if kind == "department":
        for name, i, text in _texts(summary):
            for match in ORGANISM.finditer(text):
                for other in OTHER_ORGANISMS:
                    if other.lower() not in doc.review_text().lower():
                        new = text[:match.start()] + other + text[match.end():]
                        return _replace(summary, name, i, new), \
                            f"{name}: {match.group(0)} → {other}"
        return None
    fact_kind = "date" if kind == "date" else kind
    pattern = _PATTERNS[kind]
    for name, i, text in _texts(summary):
        for match in pattern.finditer(text):
            for replacement in _candidates(kind, match):
                if replacement == match.group(0):
                    continue
                new = text[:match.start()] + replacement + text[match.end():]
                if _unsupported(replacement, fact_kind, index):
                    return _replace(summary, name, i, new), \
                        f"{name}: {match.group(0)} → {replacement}"
    return None


def build_set(settings: Settings, doc_refs: Sequence[str]) -> list[ReviewCase]:
    cases: list[ReviewCase] = []
    for ref in doc_refs:
        doc = load_source(settings, ref)
        index = FactIndex.of(doc.review_text())
        first = faithful_summary(doc, settings)
        used = frozenset(first["puntos_clave"]) | frozenset(first["plazos_y_fechas"])
        second = faithful_summary(doc, settings, exclude=used)
        variants: list[tuple[dict[str, Any], Literal["extractive", "paraphrase"]]] = [
            (first, "extractive")]
        if set(second["puntos_clave"]) - used - {first["resumen"]}:  # other sentences
            variants.append((second, "extractive"))
        other = variants[1][0] if len(variants) > 1 else first
        variants.append((paraphrase_summary(first, doc, settings, long=False), "paraphrase"))
        variants.append((paraphrase_summary(other, doc, settings, long=True), "paraphrase"))
        split = split_of(doc.id)
        for summary, style in variants:
            cases.append(ReviewCase(doc=doc.id, summary=summary, faithful=True, style=style,
                                    split=split))
            for kind in PERTURBATIONS:
                changed = perturb(summary, kind, doc, index, _limit(doc, settings))
                if changed is not None:
                    cases.append(ReviewCase(doc=doc.id, summary=changed[0], faithful=False,
                                            perturbation=kind, note=changed[1], style=style,
                                            split=split))
    return cases


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m boeflow.evals.review build [OUT]``: rebuild the shipped set from
    every recorded sample document."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "build":
        raise SystemExit("usage: python -m boeflow.evals.review build [OUT.jsonl]")
    out = Path(args[1]) if len(args) > 1 else SHIPPED_SET
    settings = Settings()
    refs = [p.stem for p in sorted((settings.samples_dir / "documents").glob("*.xml"))]
    cases = build_set(settings, refs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(c.model_dump_json(exclude_defaults=False) + "\n" for c in cases),
                   encoding="utf-8")
    print(f"{len(cases)} cases from {len(refs)} documents → {out}")


if __name__ == "__main__":
    main()
