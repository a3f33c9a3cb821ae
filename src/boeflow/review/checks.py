"""The automatic review run on every summary and translation before a human sees it.

Each check returns a ``CheckResult`` (score in [0, 1], flag, reasons). The reasons are in
Spanish because the reviewers read them. A check that cannot decide flags rather than
passes: a wrong date in a summary is worse than a summary sent for a human look.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

from boeflow.core.textnorm import fold
from boeflow.review.anchors import AnchoredFact, AnchorSource, describe
from boeflow.review.facts import LANGUAGE_BOUND_KINDS, Fact, FactIndex, extract_facts
from boeflow.review.injection import find_injection_sentences
from boeflow.review.model import CheckResult, ReviewResult
from boeflow.review.negation import clauses, polarity_mismatches

Language = Literal["es", "va"]

# py3langid has no "va" label: Valencian is identified as Catalan.
LANGID_CODE: dict[Language, str] = {"es": "es", "va": "ca"}
MIN_LANGUAGE_PROBABILITY = 0.5
MIN_LETTERS_FOR_LANGUAGE = 20

FACT_LABELS = {"boe_id": "identificador BOE", "citation": "cita normativa", "date": "fecha",
               "amount": "importe", "percent": "porcentaje", "article": "artículo",
               "deadline": "plazo", "organism": "organismo", "number": "número", "url": "URL"}

# Phrases that belong to a chatbot or a prompt, not to a summary of the BOE.
INSTRUCTION_MARKERS = [re.compile(p, re.IGNORECASE) for p in (
    r"\bcomo\s+(?:un\s+)?(?:modelo|asistente)\s+de\s+(?:lenguaje|IA|inteligencia)",
    r"\bcom\s+a\s+(?:model|assistent)\s+de\s+llenguatge",
    r"\bas\s+an\s+AI\b|\blanguage\s+model\b",
    r"\b(?:devuelve|responde|escribe)\s+(?:únicamente|solamente|solo|sólo)\b",
    r"\bformato\s+JSON\b",
    r"\binstrucciones\b|\binstruccions\b|\binstructions\b",
    r"<\|[a-z_]{2,30}\|>|<\|?im_(?:start|end)\|?>",
    r"</?documento\b|</?notas\b|</?texto\b",
)]
PLACEHOLDER_LEFTOVER = re.compile(r"\[\[\s*[A-Z]\d+\s*\]\]|⟦|⟧")


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return f'"{flat[:limit]}…"' if len(flat) > limit else f'"{flat}"'


# --- faithfulness -------------------------------------------------------------------------

def check_faithfulness(output_text: str, source_text: str, *, require_complete: bool = False,
                       source_index: FactIndex | None = None,
                       name: str = "fidelidad") -> CheckResult:
    """Every BOE id, law citation, date, amount and number of the output occurs in the source.

    With ``require_complete`` (translations) every fact of the source must also come through.
    """
    index = source_index or FactIndex.of(source_text)
    # A translation renames organisations ("Ministerio" → "Ministeri"): compare those only
    # within one language.
    skipped = {"url", *LANGUAGE_BOUND_KINDS} if require_complete else {"url"}
    output_facts = [f for f in extract_facts(output_text) if f.kind not in skipped]
    reasons: list[str] = []
    supported = 0
    seen: set[tuple[str, str]] = set()
    for fact in output_facts:
        if (fact.kind, fact.key) in seen:
            continue
        seen.add((fact.kind, fact.key))
        if index.supports(fact):
            supported += 1
        else:
            reasons.append(f"{FACT_LABELS[fact.kind]} {_quote(fact.text)} no está en la fuente")
    total = len(seen)
    if require_complete:
        checked, missing = source_facts_missing(source_text, output_text, skipped)
        total += checked
        supported += checked - len(missing)
        reasons += [f"{FACT_LABELS[fact.kind]} {_quote(fact.text)} de la fuente falta en la "
                    "salida" for fact in missing]
    if not require_complete:
        for phrase in added_negations(output_text, index.text_folded or source_text):
            total += 1
            reasons.append(f"negación {_quote(phrase)} que la fuente no contiene")
    score = supported / total if total else 1.0
    return CheckResult(name=name, score=score, flagged=bool(reasons), reasons=reasons)


_SUMMARY_SENTENCE = re.compile(r"(?<=[.;!?])\s+(?=\S)")
# A summary sentence is compared for polarity with the source sentence it paraphrases only
# when the source sentence has at least this share of its content words.
MIN_ALIGNMENT = 0.5


def summary_sentences(fields: Mapping[str, str | Sequence[str]]) -> list[tuple[str, str]]:
    """(field, sentence) of every field and list item of a summary, in order."""
    found = []
    for name, value in fields.items():
        for item in ([value] if isinstance(value, str) else list(value)):
            for sentence in _SUMMARY_SENTENCE.split(str(item)):
                if sentence.strip():
                    found.append((name, sentence.strip()))
    return found


def check_anchored_faithfulness(fields: Mapping[str, str | Sequence[str]],
                                source: AnchorSource,
                                name: str = "fidelidad") -> CheckResult:
    """Every fact of a summary has its support in the source, kept as an anchor (path,
    offsets, quote); one without support is flagged with the closest candidate span. Every
    summary clause keeps the polarity of the source clause it paraphrases."""
    facts: list[AnchoredFact] = []
    reasons: list[str] = []
    seen: set[tuple[str, str, bool]] = set()
    for field_name, sentence in summary_sentences(fields):
        sentence_facts = [f for f in extract_facts(sentence) if f.kind != "url"]
        supported_spans: list[tuple[int, int]] = []
        for fact in sentence_facts:
            # A number inside a supported deadline, date or amount ("20 días" for "veinte
            # días") is that fact's, already checked.
            if fact.kind == "number" and any(s <= fact.start and fact.end <= e
                                             for s, e in supported_spans):
                continue
            anchored = source.anchor(fact, context=sentence, field_name=field_name)
            if anchored.supported and fact.kind != "number":
                supported_spans.append((fact.start, fact.end))
            key = (fact.kind, fact.key, anchored.supported)
            if key in seen:
                continue
            seen.add(key)
            facts.append(anchored)
            if not anchored.supported:
                reasons.append(f"{FACT_LABELS[fact.kind]}: {describe(anchored)}")
        if fold(sentence).rstrip(". ") in PRESCRIBED_NEGATIONS:
            continue
        keys: set[tuple[str, str]] = {(str(f.kind), f.key) for f in sentence_facts}
        aligned = source.candidates(sentence, keys)
        negative = any(c.negative for c in clauses(sentence))
        if not aligned or aligned[0][1] < MIN_ALIGNMENT:
            continue
        texts = [candidate.text for candidate, _ in aligned]
        if not negative and not any(c.negative for t in texts for c in clauses(t)):
            continue
        mismatches = polarity_mismatches(sentence, texts)
        # The anchor: the source sentence holding the clause the summary contradicts.
        wanted = {m.source_clause for m in mismatches}
        target = next((c for c, _ in aligned if wanted & {k.text for k in clauses(c.text)}),
                      aligned[0][0])
        anchor = source.sentence_anchor(target)
        for mismatch in mismatches:
            anchored = AnchoredFact(kind="negation", value=mismatch.summary_clause,
                                    supported=False, source=anchor, field=field_name)
            facts.append(anchored)
            what = ("niega lo que la fuente afirma" if mismatch.added
                    else "afirma lo que la fuente niega")
            reasons.append(f"negación: el resumen {what}: «{sentence}»; la fuente, "
                           f"{anchor.path}: «{anchor.quote}»")
        if negative and not mismatches:
            facts.append(AnchoredFact(kind="negation", value=sentence, supported=True,
                                      source=anchor, field=field_name))
    total = len(facts)
    supported = sum(f.supported for f in facts)
    return CheckResult(name=name, score=supported / total if total else 1.0,
                       flagged=bool(reasons), reasons=reasons, facts=facts)


def source_facts_missing(source_text: str, output_text: str,
                         skipped: Collection[str] = frozenset({"url", "organism"}),
                         ) -> tuple[int, list[Fact]]:
    """(distinct facts of the source checked, those the output lost or changed): every BOE
    id, citation, date, amount, percentage, article, deadline and number of a source must
    come through a translation unchanged. The review of translations and ``boeflow eval
    translation`` (facts_preserved) both use this."""
    output_index = FactIndex.of(output_text)
    seen: set[tuple[str, str]] = set()
    missing: list[Fact] = []
    for fact in extract_facts(source_text):
        if fact.kind in skipped or (fact.kind, fact.key) in seen:
            continue
        seen.add((fact.kind, fact.key))
        if not output_index.supports(fact):
            missing.append(fact)
    return len(seen), missing


_NEGATION = re.compile(r"\b(no|nunca|jam[aá]s)\s+((?:se|le|les|lo|la|los|las)\s+)?([^\W\d_]+)",
                       re.IGNORECASE)


# Negations the summary prompt itself prescribes ("No consta" when the text is silent).
PRESCRIBED_NEGATIONS = frozenset({"no consta"})


def added_negations(output_text: str, source_text: str) -> list[str]:
    """Negated phrases of the output ("no se establece") whose affirmative form is in the
    source and whose negated form is not: a negation the summary added."""
    source = " ".join(fold(source_text).split())
    found = []
    for match in _NEGATION.finditer(output_text):
        clitic = (match.group(2) or "").strip()
        phrase = fold(f"{clitic} {match.group(3)}".strip())
        negated = fold(f"{match.group(1)} {phrase}")
        if negated in PRESCRIBED_NEGATIONS:
            continue
        if re.search(rf"\b{re.escape(phrase)}\b", source) and negated not in source:
            found.append(match.group(0))
    return found


# --- language -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) by py3langid; Valencian is reported as "ca"."""
    lang, prob = _identifier().classify(text)
    return str(lang), float(prob)


def language_probabilities(text: str) -> dict[str, float]:
    return {str(lang): float(p) for lang, p in _identifier().rank(text)}


def check_language(text: str, expected: Language, name: str = "idioma") -> CheckResult:
    """The output is in the expected language: Spanish, or Valencian (identified as "ca")."""
    code = LANGID_CODE[expected]
    letters = sum(ch.isalpha() for ch in text)
    if letters == 0:
        return CheckResult(name=name, score=0.0, flagged=True, reasons=["no hay texto"])
    probabilities = language_probabilities(text)
    top = max(probabilities, key=lambda lang: probabilities[lang])
    score = probabilities.get(code, 0.0)
    if letters < MIN_LETTERS_FOR_LANGUAGE:
        # Too short to identify reliably: do not flag on language alone.
        return CheckResult(name=name, score=score, flagged=False,
                           reasons=[f"texto demasiado corto para identificar ({letters} letras)"])
    if top != code or score < MIN_LANGUAGE_PROBABILITY:
        return CheckResult(name=name, score=score, flagged=True, reasons=[
            f"se esperaba {expected} ({code}) y se detecta {top} "
            f"(p={probabilities[top]:.2f}; p[{code}]={score:.2f})"])
    return CheckResult(name=name, score=score, flagged=False)


# --- vocabulary -------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]{3,}")
# Words a Spanish summary may use that its source need not contain.
_COMMON = (
    "que los las del por para con una uno unos unas sus este esta estos estas ese esa eso "
    "como más menos entre sobre desde hasta según sin tras ante bajo cada todo toda todos "
    "todas otro otra otros otras ser son está están han hay puede pueden debe deben será "
    "serán sido tiene tienen también así cual cuales cuando donde quien quienes muy pero "
    "aunque porque mismo misma dicho dicha además norma normas documento disposición "
    "resolución orden texto establece establecen regula regulan aprueba aprueban modifica "
    "modifican deroga derogan publica publican anuncia anuncian convoca convocan fija fijan "
    "determina determinan dispone disponen prevé prevén recoge recogen afecta afectan "
    "aplica aplican destinatarios personas entidades ciudadanos plazo plazos fecha fechas "
    "vigor entrada consta publicación boletín oficial estado día días mes meses año años "
    "siguiente siguientes resumen punto puntos clave medidas ayudas requisitos solicitud "
    "solicitudes procedimiento efectos general generales nueva nuevo nuevas nuevos "
)
COMMON_WORDS = frozenset(fold(w) for w in _COMMON.split())
MIN_KNOWN_SHARE = 0.6
MIN_WORDS_FOR_VOCABULARY = 6


def check_vocabulary(output_text: str, source_text: str, *,
                     source_words: frozenset[str] | None = None,
                     name: str = "lexico") -> CheckResult:
    """Most words of a summary are words of its source (or common words): a text made of
    word fragments or words the document never uses is nonsense or invented."""
    words = [fold(w) for w in _WORD.findall(output_text)]
    if len(words) < MIN_WORDS_FOR_VOCABULARY:
        return CheckResult(name=name, score=1.0, flagged=False)
    vocabulary = source_words if source_words is not None else frozenset(
        fold(w) for w in _WORD.findall(source_text))
    unknown = [w for w in words if w not in vocabulary and w not in COMMON_WORDS]
    share = 1 - len(unknown) / len(words)
    if share < MIN_KNOWN_SHARE:
        sample = ", ".join(sorted(set(unknown))[:6])
        return CheckResult(name=name, score=share, flagged=True, reasons=[
            f"solo el {share:.0%} de las palabras están en la fuente o son de uso común "
            f"(p. ej. {sample}): texto sin sentido o inventado"])
    return CheckResult(name=name, score=share, flagged=False)


# --- form ---------------------------------------------------------------------------------

def _phrase_loop(words: list[str], max_n: int = 6) -> str | None:
    """A word repeated 4 times in a row, or a phrase of 2–6 words 3 times in a row."""
    for n in range(1, max_n + 1):
        repeats = 4 if n == 1 else 3
        for start in range(len(words) - n * repeats + 1):
            phrase = words[start:start + n]
            if all(words[start + k * n:start + (k + 1) * n] == phrase for k in range(repeats)):
                return " ".join(phrase)
    return None


def repetition_problems(text: str) -> list[str]:
    """Degenerate repetition: loops of a word, a phrase or a fragment of a word."""
    problems: list[str] = []
    words = re.findall(r"\w+", text.lower())
    loop = _phrase_loop(words)
    if loop:
        problems.append(f"la secuencia {_quote(loop)} se repite en bucle")
    if len(words) >= 12:
        trigrams = list(zip(words, words[1:], words[2:], strict=False))
        distinct = len(set(trigrams)) / len(trigrams)
        if distinct < 0.5:
            problems.append(f"texto repetitivo ({distinct:.0%} de trigramas distintos)")
    fragment = re.search(r"(\w{2,20}?)\1{4,}", text)
    if fragment:
        problems.append(f"fragmento repetido en bucle {_quote(fragment.group(0))}")
    return problems


@lru_cache(maxsize=32)
def _source_urls(source_lower: str) -> frozenset[str]:
    return frozenset(f.key for f in extract_facts(source_lower, ["url"]))


def _foreign_urls(text: str, source_lower: str) -> list[str]:
    index = FactIndex(keys={"url": set(_source_urls(source_lower))}, text_lower=source_lower)
    return [f.text for f in extract_facts(text, ["url"]) if not index.supports(f)]


def _foreign_instructions(text: str, source_lower: str) -> list[str]:
    found = []
    for pattern in INSTRUCTION_MARKERS:
        match = pattern.search(text)
        if match and match.group(0).lower() not in source_lower:
            found.append(match.group(0))
    return found


def _prose_problems(label: str, text: str, source_lower: str) -> list[str]:
    problems = [f"{label}: {p}" for p in repetition_problems(text)]
    problems += [f"{label}: URL {_quote(u)} que no está en la fuente"
                 for u in _foreign_urls(text, source_lower)]
    problems += [f"{label}: texto de instrucciones {_quote(i)} que no está en la fuente"
                 for i in _foreign_instructions(text, source_lower)]
    if PLACEHOLDER_LEFTOVER.search(text):
        problems.append(f"{label}: quedan marcadores de protección sin restaurar")
    return problems


def check_summary_form(fields: Mapping[str, str | Sequence[str]] | None, raw_text: str,
                       source_text: str, *, resumen_max_chars: int,
                       resumen_min_chars: int = 40, max_points: int = 12,
                       name: str = "forma") -> CheckResult:
    """Length bounds, no empty fields, no degenerate repetition, no URL or instruction
    that is not in the source."""
    source_lower = source_text.lower()
    if fields is None:
        problems = ["no hay salida estructurada que revisar"]
        problems += _prose_problems("respuesta", raw_text, source_lower)
        if not raw_text.strip():
            problems.append("respuesta vacía")
        return CheckResult(name=name, score=0.0, flagged=True, reasons=problems)
    problems = []
    tests = 0
    resumen = str(fields.get("resumen", ""))
    tests += 1
    # The mode's length policy: callers store the summary trimmed to it (``fit_summary``),
    # so only a resumen the policy cannot fit (too short, or untrimmed) is a form problem.
    if not resumen_min_chars <= len(resumen) <= resumen_max_chars:
        problems.append(f"resumen de {len(resumen)} caracteres fuera del esquema del modo "
                        f"({resumen_min_chars}–{resumen_max_chars})")
    points = fields.get("puntos_clave", [])
    tests += 1
    if isinstance(points, str) or not 1 <= len(points) <= max_points:
        problems.append(f"puntos_clave debe tener entre 1 y {max_points} puntos")
    elif len({p.strip().lower() for p in points}) < len(points):
        problems.append("puntos_clave repetidos")
    for key, value in fields.items():
        items = [value] if isinstance(value, str) else list(value)
        tests += 1
        if isinstance(value, str) and not value.strip():
            problems.append(f"campo vacío: {key}")
        elif any(not item.strip() for item in items):
            problems.append(f"elemento vacío en {key}")
        tests += 1
        prose = _prose_problems(key, "\n".join(items), source_lower)
        problems += prose
    score = max(0.0, 1.0 - len(problems) / max(tests, 1))
    return CheckResult(name=name, score=score, flagged=bool(problems), reasons=problems)


def check_translation_form(source: str, output: str, name: str = "forma") -> CheckResult:
    """Not empty, a plausible length for a translation, no loops, no foreign URL or prompt."""
    problems: list[str] = []
    if not output.strip():
        return CheckResult(name=name, score=0.0, flagged=True, reasons=["traducción vacía"])
    if len(source) >= 20:
        ratio = len(output) / len(source)
        if not 0.5 <= ratio <= 2.0:
            problems.append(f"longitud {ratio:.2f} veces la del original (límites 0.5–2.0)")
    problems += _prose_problems("traducción", output, source.lower())
    return CheckResult(name=name, score=max(0.0, 1.0 - len(problems) / 4), flagged=bool(problems),
                       reasons=problems)


def check_schema(status: str, errors: Sequence[str], name: str = "esquema") -> CheckResult:
    if status == "ok":
        return CheckResult(name=name, score=1.0, flagged=False)
    detail = errors[-1] if errors else "salida no válida"
    return CheckResult(name=name, score=0.0, flagged=True,
                       reasons=[f"salida estructurada inválida tras {len(errors)} intentos: "
                                f"{detail}"])


# --- prompt injection ---------------------------------------------------------------------

def find_injections(text: str) -> list[str]:
    """Passages of ``text`` addressed to the model (``boeflow.review.injection``)."""
    return list(_injections(text))


@lru_cache(maxsize=32)  # a source is scanned once for all the outputs reviewed against it
def _injections(text: str) -> tuple[str, ...]:
    return tuple(finding.text for finding in find_injection_sentences(text))


def check_prompt_injection(source_text: str, output_text: str,
                           name: str = "inyeccion") -> CheckResult:
    """The document contains text addressed to the model. The pipeline treats it as data
    (delimited, special tokens neutralised) but a human must see it; an output that echoes
    the instructions is a sign they were obeyed."""
    reasons = [f"el documento contiene instrucciones dirigidas al modelo: {_quote(found)}"
               for found in find_injections(source_text)]
    reasons += [f"la salida reproduce instrucciones: {_quote(found)}"
                for found in find_injections(output_text)]
    return CheckResult(name=name, score=0.0 if reasons else 1.0, flagged=bool(reasons),
                       reasons=reasons)


# --- whole reviews ------------------------------------------------------------------------

def review_summary(*, fields: Mapping[str, str | Sequence[str]] | None, raw_text: str,
                   status: str, errors: Sequence[str], source_text: str,
                   resumen_max_chars: int, resumen_min_chars: int = 40, max_points: int = 12,
                   source: AnchorSource | None = None,
                   language: Language = "es") -> ReviewResult:
    """All checks on one summary. ``source_text`` is what the model was given; ``source``
    the parsed document facts are anchored into (default: ``source_text`` itself). The
    length bounds are the summary mode's ``LengthPolicy`` (``boeflow.enrich.schema``)."""
    anchors = source or AnchorSource(text=source_text)
    if fields is not None:
        output_text = "\n".join(v if isinstance(v, str) else "\n".join(v)
                                for v in fields.values())
        faithfulness = check_anchored_faithfulness(fields, anchors)
    else:
        output_text = raw_text
        faithfulness = check_anchored_faithfulness({"respuesta": raw_text}, anchors)
    return ReviewResult.of([
        check_schema(status, errors),
        faithfulness,
        check_language(output_text, language),
        check_vocabulary(output_text, source_text),
        check_summary_form(fields, raw_text, source_text, resumen_max_chars=resumen_max_chars,
                           resumen_min_chars=resumen_min_chars, max_points=max_points),
        check_prompt_injection(source_text, output_text),
    ])


# --- cross-check against a reference translation -------------------------------------------

# Lowest chrF (sacrebleu, 0-100) of a model translation against Apertium's translation of the
# same text; calibrated on the DOGV pairs (docs/review.md, scripts/calibrate_reference.py).
REFERENCE_MIN_CHRF = 65.0
# Below this many characters chrF says little (a title of three words): not checked.
REFERENCE_MIN_CHARS = 25


@lru_cache(maxsize=1)
def _chrf() -> Any:
    from sacrebleu.metrics.chrf import CHRF

    return CHRF()


def chrf(output: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu's defaults: character 6-grams, beta 2) in 0-100."""
    return float(_chrf().sentence_score(output, [reference]).score)


def check_reference(pairs: Sequence[tuple[str, str, str]], *,
                    min_chrf: float = REFERENCE_MIN_CHRF,
                    name: str = "referencia") -> CheckResult:
    """A model translation says what Apertium's rule-based translation of the same text
    says: a low chrF between them is a dropped, added or rewritten passage. ``pairs`` are
    (label, output, reference)."""
    scores: list[float] = []
    reasons: list[str] = []
    for label, output, reference in pairs:
        if len(reference.strip()) < REFERENCE_MIN_CHARS:
            continue
        score = chrf(output, reference) if output.strip() else 0.0
        scores.append(score)
        if score < min_chrf:
            reasons.append(f"{label}: chrF {score:.1f} frente a la traducción de Apertium "
                           f"(mínimo {min_chrf:g}): posible frase omitida, añadida o cambiada")
    return CheckResult(name=name, score=min(scores) / 100 if scores else 1.0,
                       flagged=bool(reasons), reasons=reasons)


def review_translation(segments: Sequence[tuple[str, str]], *, target_language: Language,
                       placeholders_missing: Sequence[str] = (),
                       references: Sequence[str | None] | None = None,
                       labels: Sequence[str] | None = None,
                       min_reference_chrf: float = REFERENCE_MIN_CHRF) -> ReviewResult:
    """All checks on a translation given as (source, output) segment pairs; with
    ``references`` (Apertium's translation of each segment's source) also the
    ``referencia`` cross-check."""
    source_all = "\n".join(s for s, _ in segments)
    output_all = "\n".join(o for _, o in segments)
    faithfulness = [check_faithfulness(o, s, require_complete=True) for s, o in segments]
    reasons = [r for c in faithfulness for r in c.reasons]
    reasons += [f"marcador {p} perdido en la traducción" for p in placeholders_missing]
    scores = [c.score for c in faithfulness] or [1.0]
    forms = [check_translation_form(s, o) for s, o in segments]
    return ReviewResult.of([
        CheckResult(name="fidelidad", score=min(scores), flagged=bool(reasons), reasons=reasons),
        check_language(output_all, target_language),
        CheckResult(name="forma", score=min(c.score for c in forms) if forms else 0.0,
                    flagged=not forms or any(c.flagged for c in forms),
                    reasons=[r for c in forms for r in c.reasons] or
                    ([] if forms else ["nada que traducir"])),
        check_prompt_injection(source_all, output_all),
        *([check_reference(
            [(labels[i] if labels else f"segmento {i + 1}", output, reference)
             for i, ((_, output), reference) in enumerate(zip(segments, references,
                                                                strict=True))
             if reference is not None], min_chrf=min_reference_chrf)]
          if references is not None and any(r is not None for r in references) else []),
    ])
