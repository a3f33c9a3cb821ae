"""Schema-valid summaries by construction: constrained decoding of the summary's JSON.

In process, ``llguidance`` (pinned in ``pyproject.toml``) computes for every decoding step the
set of tokens that keep the output inside a grammar, and a ``transformers`` logits processor
masks every other token. Why llguidance: a Rust core with no Python dependency at all (one
abi3 wheel; xgrammar pulls triton and a TVM runtime, outlines-core needs its own glue and
lm-format-enforcer is pure Python and an order of magnitude slower per token), it works with
any fast Hugging Face tokenizer (ALIA's and Aitana's, and the smoke models' BPE) on CPU, it is
the structured-output engine of vLLM, SGLang and llama.cpp, and its grammars can cap the
**tokens** of each field (``max_tokens``), which is what makes completion within
``max_new_tokens`` a guarantee rather than a hope.

The grammar is the summary schema itself (``Summary``: the same keys, in order, the same list
and length bounds), with each text field given a share of the output budget; every value
starts with a letter or digit, so no field is ever empty or whitespace. A generation that
follows it is valid JSON that ``Summary`` validates, whatever the weights (the random smoke
model included): the review then judges its content.

Over HTTP the same schema is sent as ``response_format`` ``{"type": "json_schema"}`` (vLLM's
structured outputs). A server that ignores it (``transformers serve`` does) falls back on the
bounded repair loop.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from boeflow.enrich.schema import LIST_POLICY, MAX_ITEM_CHARS, RESUMEN_MAX_CHARS

if TYPE_CHECKING:
    import torch

# Lists per summary kind: (puntos_clave max, plazos_y_fechas max, normas_afectadas max).
# The lists' maxima of the mode's length policy (boeflow.enrich.schema.LIST_POLICY).
LIST_LIMITS = {short: (points[1], dates, norms)
               for short, (points, dates, norms) in LIST_POLICY.items()}
# Relative share of the output budget per value.
WEIGHTS = {"resumen": 4.0, "punto": 1.2, "a_quien_afecta": 1.0, "fecha": 0.8,
           "entrada_en_vigor": 0.8, "norma": 0.8}
MIN_FIELD_TOKENS = 2
SEPARATOR = ", "


@dataclass(frozen=True)
class SummaryConstraint:
    """What the final (or short) summary prompt must produce. Part of generation cache keys."""

    short: bool
    resumen_max_chars: int

    def fingerprint(self) -> dict[str, Any]:
        return {"schema": "summary-v1", "short": self.short, "resumen": self.resumen_max_chars}


def _value(first_max: int) -> str:
    """A JSON string body: starts with a letter or digit, no quote, backslash or control."""
    return rf'/[\p{{L}}\p{{N}}][^"\\\x00-\x1f]{{0,{max(0, first_max - 1)}}}/'


def _skeleton(short: bool) -> str:
    points, dates, norms = LIST_LIMITS[short]

    def items(n: int) -> str:
        return "[" + SEPARATOR.join(['""'] * n) + "]"

    return (f'{{"resumen": "", "puntos_clave": {items(points)}, "a_quien_afecta": "", '
            f'"plazos_y_fechas": {items(dates)}, "entrada_en_vigor": "", '
            f'"normas_afectadas": {items(norms)}}}')


def _counts(short: bool) -> dict[str, int]:
    points, dates, norms = LIST_LIMITS[short]
    return {"resumen": 1, "punto": points, "a_quien_afecta": 1, "fecha": dates,
            "entrada_en_vigor": 1, "norma": norms}


def _fixed_tokens(short: bool, skeleton_tokens: int) -> int:
    # Literal text is forced byte by byte; joining it with values can cost a token per
    # boundary beyond the skeleton's own count; plus the end token and one spare.
    return skeleton_tokens + 2 * sum(_counts(short).values()) + 2


def skeleton_tokens(tokenizer: Any, short: bool) -> int:
    return len(tokenizer(_skeleton(short), add_special_tokens=False)["input_ids"])


def minimum_new_tokens(short: bool, skeleton: int) -> int:
    """The smallest ``max_new_tokens`` that leaves every value ``MIN_FIELD_TOKENS``."""
    counts = _counts(short)
    weight = sum(WEIGHTS[k] * n for k, n in counts.items())
    return _fixed_tokens(short, skeleton) + math.ceil(
        MIN_FIELD_TOKENS * weight / min(WEIGHTS.values())) + 1


def field_budgets(constraint: SummaryConstraint, max_new_tokens: int,
                  skeleton: int) -> dict[str, int]:
    """Token cap of each value so that the longest possible answer (every list full, every
    value at its cap) plus the end token fits ``max_new_tokens``."""
    counts = _counts(constraint.short)
    available = max_new_tokens - _fixed_tokens(constraint.short, skeleton)
    weight = sum(WEIGHTS[k] * n for k, n in counts.items())
    unit = available / weight
    budgets = {k: math.floor(WEIGHTS[k] * unit) for k in counts}
    if min(budgets.values()) < MIN_FIELD_TOKENS:
        raise ValueError(f"max_new_tokens={max_new_tokens} is too small for a structured "
                         f"summary: at least {minimum_new_tokens(constraint.short, skeleton)} "
                         "are needed")
    return budgets


def summary_grammar(constraint: SummaryConstraint, max_new_tokens: int,
                    skeleton_tokens: int) -> str:
    """The Lark grammar (llguidance dialect) of the summary JSON."""
    points, dates, norms = LIST_LIMITS[constraint.short]
    b = field_budgets(constraint, max_new_tokens, skeleton_tokens)
    resumen_chars = min(constraint.resumen_max_chars, RESUMEN_MAX_CHARS)

    def lit(text: str) -> str:
        return json.dumps(text)  # a Lark string literal

    def listing(rule: str, minimum: int, maximum: int) -> str:
        rest = f"({lit(SEPARATOR)} {rule}){{0,{maximum - 1}}}"
        body = f"{rule} {rest}"
        return f'"[" {body} "]"' if minimum else f'"[" ({body})? "]"'

    start = " ".join([
        "start:", lit('{"resumen": '), "str_resumen",
        lit(', "puntos_clave": '), listing("str_punto", 1, points),
        lit(', "a_quien_afecta": '), "str_afecta",
        lit(', "plazos_y_fechas": '), listing("str_fecha", 0, dates),
        lit(', "entrada_en_vigor": '), "str_vigor",
        lit(', "normas_afectadas": '), listing("str_norma", 0, norms), lit("}")])
    rules = [start]
    for name, key, chars in (("resumen", "resumen", resumen_chars),
                             ("punto", "punto", MAX_ITEM_CHARS),
                             ("afecta", "a_quien_afecta", MAX_ITEM_CHARS),
                             ("fecha", "fecha", MAX_ITEM_CHARS),
                             ("vigor", "entrada_en_vigor", MAX_ITEM_CHARS),
                             ("norma", "norma", MAX_ITEM_CHARS)):
        rules.append(f"str_{name}: {lit(chr(34))} val_{name} {lit(chr(34))}")
        rules.append(f"val_{name}[max_tokens={b[key]}]: {_value(chars)}")
    return "\n".join(rules) + "\n"


def summary_json_schema(constraint: SummaryConstraint) -> dict[str, Any]:
    """The same bounds as a JSON schema, for ``response_format`` on OpenAI-compatible servers."""
    points, dates, norms = LIST_LIMITS[constraint.short]
    resumen_chars = min(constraint.resumen_max_chars, RESUMEN_MAX_CHARS)

    def text(max_chars: int) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": max_chars}

    def listing(min_items: int, max_items: int) -> dict[str, Any]:
        return {"type": "array", "items": text(MAX_ITEM_CHARS), "minItems": min_items,
                "maxItems": max_items}

    return {
        "type": "object",
        "properties": {
            "resumen": text(resumen_chars),
            "puntos_clave": listing(1, points),
            "a_quien_afecta": text(MAX_ITEM_CHARS),
            "plazos_y_fechas": listing(0, dates),
            "entrada_en_vigor": text(MAX_ITEM_CHARS),
            "normas_afectadas": listing(0, norms),
        },
        "required": ["resumen", "puntos_clave", "a_quien_afecta", "plazos_y_fechas",
                     "entrada_en_vigor", "normas_afectadas"],
        "additionalProperties": False,
    }


def response_format(constraint: SummaryConstraint) -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": "resumen_boe", "strict": True,
                            "schema": summary_json_schema(constraint)}}


class GrammarConstraints:
    """Builds llguidance matchers for one tokenizer (the LLTokenizer is built once)."""

    def __init__(self, tokenizer: Any, stop_ids: list[int]) -> None:
        import llguidance
        import llguidance.hf

        self.tokenizer = tokenizer
        self.stop_ids = stop_ids
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, eos_token=stop_ids[0])
        self.vocab_size = int(self.ll_tokenizer.vocab_size)
        self._skeleton_tokens = {short: skeleton_tokens(tokenizer, short)
                                 for short in (True, False)}

    @lru_cache(maxsize=32)  # noqa: B019 - one instance per loaded model, kept for the process
    def grammar(self, constraint: SummaryConstraint, max_new_tokens: int) -> str:
        import llguidance

        lark = summary_grammar(constraint, max_new_tokens, self._skeleton_tokens[constraint.short])
        grammar: str = llguidance.LLMatcher.grammar_from_lark(lark)
        error = llguidance.LLMatcher.validate_grammar(grammar, self.ll_tokenizer)
        if error:
            raise ValueError(f"invalid summary grammar: {error}")
        return grammar

    def processor(self, constraint: SummaryConstraint, max_new_tokens: int, rows: int,
                  prompt_length: int) -> GrammarLogitsProcessor:
        import llguidance

        grammar = self.grammar(constraint, max_new_tokens)
        matchers = [llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
                    for _ in range(rows)]
        return GrammarLogitsProcessor(matchers, self.vocab_size, self.stop_ids[0],
                                      prompt_length)


class GrammarLogitsProcessor:
    """A ``transformers`` logits processor: row ``i`` may only continue its grammar; a row
    whose grammar is complete may only end."""

    def __init__(self, matchers: list[Any], vocab_size: int, eos_id: int,
                 prompt_length: int) -> None:
        import numpy as np

        self.matchers = matchers
        self.eos_id = eos_id
        self.prompt_length = prompt_length
        self.mask = np.full((len(matchers), (vocab_size + 31) // 32), -1, dtype=np.int32)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import torch
        from llguidance.numpy import fill_next_token_bitmask

        generated = input_ids.shape[1] - self.prompt_length
        for row, matcher in enumerate(self.matchers):
            if generated > 0 and not matcher.is_stopped() and not matcher.is_error():
                matcher.consume_token(int(input_ids[row, -1]))
            if matcher.is_stopped() or matcher.is_error():
                self.mask[row, :] = 0
                word, bit = divmod(self.eos_id, 32)
                self.mask[row, word] = np.array(1 << bit, dtype=np.uint32).view(np.int32)
            else:
                fill_next_token_bitmask(matcher, self.mask, row)
        bits = np.unpackbits(self.mask.view(np.uint8), axis=1, bitorder="little")
        allowed = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        width = min(bits.shape[1], scores.shape[1])
        allowed[:, :width] = torch.from_numpy(bits[:, :width].astype(bool)).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))

    def errors(self) -> list[str]:
        return [m.get_error() for m in self.matchers if m.is_error()]
