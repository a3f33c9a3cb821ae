"""Structured Spanish summaries of BOE documents.

* Sections 2 and 5 (appointments, notices): one short pass.
* Documents that fit the context: one pass.
* Longer documents: map-reduce. The map step writes notes on consecutive groups of
  structural sections, reduce steps merge notes until they fit one final prompt, and the
  final prompt asks for the JSON summary. Every prompt is counted with the model's own
  tokenizer and logged (``SummaryRecord.prompts``) with its budget.

The final answer is decoded under the summary's JSON grammar (``boeflow.enrich.structured``),
so it validates by construction; an answer that still does not validate (a server that
ignores ``response_format``) is re-asked with the error at most ``summary_max_repairs``
times, then the record is marked failed with the raw text kept.

``summarize_many`` runs many documents at once: each document's work is a generator that
yields the prompts it needs next (map, reduce, final, repair) and receives their outputs,
and the driver generates the prompts of all documents waiting at the same step together,
so batches are filled across documents. One document's error stays that document's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Literal

from boeflow.core.settings import Settings
from boeflow.enrich.backends import Backend, GenerationParams
from boeflow.enrich.budget import SEPARATOR_TOKENS, hard_split, pack, split_to_budget
from boeflow.enrich.cache import EnrichStore, cache_key
from boeflow.enrich.prompts import DEFAULT_SUMMARY_PROMPTS, Message, SummaryPrompts
from boeflow.enrich.schema import (
    PromptLog,
    Summary,
    SummaryRecord,
    fit_summary,
    length_policy,
    parse_summary,
)
from boeflow.enrich.structured import SummaryConstraint, minimum_new_tokens, skeleton_tokens
from boeflow.models.loading import ModelSetupError
from boeflow.review import ReviewResult, review_summary
from boeflow.review.source import SourceDocument

log = logging.getLogger(__name__)

# Tokens kept free beyond the counted prompt: the "parte i de n" digits and similar.
SAFETY_TOKENS = 32
# The repair turn ("Tu respuesta no es válida: …") on top of the previous answer.
REPAIR_OVERHEAD_TOKENS = 160
NOTES_SEPARATOR = "\n---\n"

Stage = Literal["map", "reduce", "final", "short", "repair", "translate"]
_Render = Callable[[str], list[Message]]


@dataclass
class Request:
    """Prompts one document needs generated before it can go on."""

    prompts: list[list[Message]]
    params: GenerationParams
    stage: Stage
    level: int = 0


@dataclass
class Output:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool


Flow = Generator[Request, list[Output], SummaryRecord]
Result = SummaryRecord | Exception


class Summarizer:
    def __init__(self, settings: Settings, backend: Backend, store: EnrichStore | None = None,
                 prompts: SummaryPrompts = DEFAULT_SUMMARY_PROMPTS) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store or EnrichStore(settings)
        self.prompts = prompts
        self._special_tokens: list[str] | None = None
        self.generated_ids: set[str] = set()  # documents summarised (not loaded) here
        self._budget_checked = False

    @property
    def _specials(self) -> list[str]:
        if self._special_tokens is None:  # needs the tokenizer: only once work is due
            self._special_tokens = self.backend.special_tokens()
        return self._special_tokens

    # --- keys -----------------------------------------------------------------------------

    def record_key(self, doc: SourceDocument) -> str:
        s = self.settings
        return cache_key(
            task="summary", model=self.backend.model_id, revision=self.backend.revision,
            prompt_version=self.prompts.version, source_hash=doc.source_hash,
            params={"max_new_tokens": s.max_new_tokens, "short": s.summary_short_max_new_tokens,
                    "map": s.summary_map_max_new_tokens, "repairs": s.summary_max_repairs,
                    "context": self.backend.context_length, "sample": s.gen_do_sample,
                    "structured": s.gen_structured,
                    "repetition_penalty": s.gen_repetition_penalty,
                    "resumen": [s.summary_resumen_max_chars, s.summary_short_resumen_max_chars]})

    def _generation_key(self, messages: list[Message], params: GenerationParams) -> str:
        rendered = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
        return cache_key(model=self.backend.model_id, revision=self.backend.revision,
                         prompt_version=self.prompts.version,
                         prompt_hash=hashlib.sha256(rendered.encode()).hexdigest(),
                         params=params.fingerprint())

    # --- generation through the per-prompt cache ----------------------------------------

    def _generate(self, prompts: Sequence[list[Message]], params: GenerationParams,
                  stage: Stage) -> list[Output]:
        """Outputs of ``prompts``: from the generation cache, else generated in one batch."""
        keys = [self._generation_key(m, params) for m in prompts]
        outputs: list[Output | None] = []
        for key in keys:
            cached = self.store.load_generation(key)
            outputs.append(None if cached is None else Output(
                text=str(cached["text"]), prompt_tokens=int(cached.get("prompt_tokens", 0)),
                completion_tokens=int(cached.get("completion_tokens", 0)), cached=True))
        todo = [i for i, out in enumerate(outputs) if out is None]
        if todo:
            generations = self.backend.generate([prompts[i] for i in todo], params)
            for i, generation in zip(todo, generations, strict=True):
                outputs[i] = Output(text=generation.text, prompt_tokens=generation.prompt_tokens,
                                    completion_tokens=generation.completion_tokens, cached=False)
                self.store.save_generation(keys[i], {
                    "text": generation.text, "completion_tokens": generation.completion_tokens,
                    "prompt_tokens": generation.prompt_tokens, "stage": stage})
        return [out for out in outputs if out is not None]

    def _log(self, request: Request, outputs: list[Output], logs: list[PromptLog]) -> None:
        for index, (messages, out) in enumerate(zip(request.prompts, outputs, strict=True)):
            tokens = out.prompt_tokens or self.backend.count_tokens(messages)
            logs.append(PromptLog(stage=request.stage, level=request.level, index=index,
                                  prompt_tokens=tokens,
                                  max_new_tokens=request.params.max_new_tokens,
                                  context_length=self.backend.context_length,
                                  completion_tokens=out.completion_tokens, cached=out.cached))

    # --- budgets --------------------------------------------------------------------------

    def _repair_reserve(self, max_new_tokens: int) -> int:
        if self.settings.summary_max_repairs == 0:
            return 0
        return max_new_tokens + REPAIR_OVERHEAD_TOKENS

    def _fits(self, messages: list[Message], max_new_tokens: int, reserve: int = 0) -> bool:
        tokens = self.backend.count_tokens(messages)
        return tokens + max_new_tokens + reserve + SAFETY_TOKENS <= self.backend.context_length

    def _text_tokens(self, text: str) -> int:
        return len(self.backend.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _budget(self, empty_prompt: list[Message], max_new_tokens: int) -> int:
        overhead = self.backend.count_tokens(empty_prompt)
        budget = self.backend.context_length - max_new_tokens - overhead - SAFETY_TOKENS
        if budget < 64:
            raise ValueError(f"context of {self.backend.context_length} tokens leaves no room "
                             f"for text (prompt overhead {overhead}, output {max_new_tokens})")
        return budget

    # --- map-reduce -----------------------------------------------------------------------

    def _map_groups(self, doc: SourceDocument, header: str, budget: int) -> list[str]:
        pieces: list[tuple[str, int]] = []
        for section in doc.sections:
            text = section.text if not section.heading or section.text.startswith(
                section.heading) else f"{section.heading}\n{section.text}"
            for piece in split_to_budget(text, budget, self._text_tokens,
                                         self.backend.tokenizer):
                pieces.append((piece, self._text_tokens(piece)))
        return [text for text, _ in pack(pieces, budget)]

    def _ensure_fit(self, texts: list[str], render: _Render, max_new_tokens: int) -> list[str]:
        """Split any group whose rendered prompt is still over budget (counted, not summed)."""
        result: list[str] = []
        pending = list(texts)
        while pending:
            text = pending.pop(0)
            if self._fits(render(text), max_new_tokens):
                result.append(text)
                continue
            lines = text.split("\n")
            if len(lines) > 1:
                half = len(lines) // 2
                pending[:0] = ["\n".join(lines[:half]), "\n".join(lines[half:])]
            else:
                pending[:0] = hard_split(text, max(64, self._text_tokens(text) // 2),
                                         self.backend.tokenizer)
        return result

    def _ask(self, request: Request, logs: list[PromptLog]) -> Generator[
            Request, list[Output], list[str]]:
        outputs = yield request
        self._log(request, outputs, logs)
        return [o.text for o in outputs]

    def _map_reduce(self, doc: SourceDocument, header: str, logs: list[PromptLog],
                    final_max_new: int, max_chars: int) -> Generator[
            Request, list[Output], str]:
        map_new = self.settings.summary_map_max_new_tokens
        params = GenerationParams.from_settings(self.settings, map_new)
        p = self.prompts
        budget = self._budget(p.map_notes(header, "", 999, 999, self._specials), map_new)
        groups = self._map_groups(doc, header, budget)
        total = len(groups)
        groups = self._ensure_fit(
            groups, lambda text: p.map_notes(header, text, total, total, self._specials),
            map_new)
        total = len(groups)
        notes = yield from self._ask(Request(
            [p.map_notes(header, g, i + 1, total, self._specials) for i, g in enumerate(groups)],
            params, "map"), logs)
        level = 1
        final_reserve = self._repair_reserve(final_max_new)
        while True:
            joined = NOTES_SEPARATOR.join(n.strip() for n in notes)
            final = p.final_from_notes(header, joined, max_chars=max_chars,
                                       special_tokens=self._specials)
            if self._fits(final, final_max_new, final_reserve):
                return joined
            reduce_budget = self._budget(p.reduce_notes(header, "", self._specials), map_new)
            # Progress guarantee: each note at most half a reduce prompt.
            note_cap = (reduce_budget - SEPARATOR_TOKENS) // 2
            pieces = []
            for note in notes:
                tokens = self._text_tokens(note)
                if tokens > note_cap:
                    note = hard_split(note, note_cap, self.backend.tokenizer)[0]
                    tokens = self._text_tokens(note)
                pieces.append((note, tokens))
            reduce_groups = [text for text, _ in pack(pieces, reduce_budget, NOTES_SEPARATOR)]
            reduce_groups = self._ensure_fit(
                reduce_groups, lambda text: p.reduce_notes(header, text, self._specials),
                map_new)
            if len(reduce_groups) >= len(notes):
                raise RuntimeError(f"reduce level {level} does not shrink {len(notes)} notes")
            notes = yield from self._ask(Request(
                [p.reduce_notes(header, g, self._specials) for g in reduce_groups], params,
                "reduce", level), logs)
            level += 1

    # --- structured output ----------------------------------------------------------------

    def _structured(self, messages: list[Message], max_new_tokens: int, stage: Stage,
                    logs: list[PromptLog], constraint: SummaryConstraint) -> Generator[
            Request, list[Output], tuple[Summary | None, str, int, list[str]]]:
        params = GenerationParams.from_settings(self.settings, max_new_tokens, constraint)
        errors: list[str] = []
        current = messages
        raw = ""
        attempts = 0
        for attempt in range(1 + self.settings.summary_max_repairs):
            attempts += 1
            raw = (yield from self._ask(Request(
                [current], params, stage if attempt == 0 else "repair", attempt), logs))[0]
            outcome = parse_summary(raw)
            if outcome.summary is not None:
                return outcome.summary, raw, attempts, errors
            errors.append(outcome.error)
            if attempt == self.settings.summary_max_repairs:
                break
            answer = raw
            current = self.prompts.repair(messages, answer, outcome.error)
            while not self._fits(current, max_new_tokens) and answer:
                # Keep the repair turn in the context: shorten the quoted answer.
                keep = max(0, self._text_tokens(answer) // 2)
                answer = hard_split(answer, keep, self.backend.tokenizer)[0] if keep > 8 else ""
                current = self.prompts.repair(messages, answer, outcome.error)
        return None, raw, attempts, errors

    # --- entry points --------------------------------------------------------------------

    def summarize(self, doc: SourceDocument, force: bool = False) -> SummaryRecord:
        """The summary of ``doc``: from the store when already made with this model,
        revision, prompt version and source; generated (and stored) otherwise."""
        result = self.summarize_many([doc], force=force)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def cached(self, doc: SourceDocument) -> SummaryRecord | None:
        record = self.store.load_record(doc.id, "summary", self.record_key(doc), SummaryRecord)
        if record is not None:
            log.info("summary of %s from the store (%s)", doc.id, record.cache_key[:12])
        return record

    def summarize_many(self, docs: Sequence[SourceDocument], force: bool = False,
                       on_done: Callable[[int, Result], None] | None = None) -> list[Result]:
        """Summaries of ``docs`` (a record, or the exception that stopped that document),
        with the prompts of every document at the same step generated together.
        ``ModelSetupError`` is not a document's failure: it stops the whole run."""
        results: list[Result | None] = [None] * len(docs)
        flows: dict[int, Flow] = {}
        pending: dict[int, Request] = {}
        calls: dict[int, list[int]] = {}

        def finish(i: int, result: Result) -> None:
            results[i] = result
            flows.pop(i, None)
            pending.pop(i, None)
            if on_done:
                on_done(i, result)

        def advance(i: int, outputs: list[Output] | None) -> None:
            try:
                flow = flows[i]
                pending[i] = next(flow) if outputs is None else flow.send(outputs)
            except StopIteration as stop:
                record: SummaryRecord = stop.value
                finish(i, record)
            except ModelSetupError:
                raise
            except Exception as exc:  # this document only
                log.warning("summary of %s failed: %s", docs[i].id, exc)
                finish(i, exc)

        for i, doc in enumerate(docs):
            try:
                hit = None if force else self.cached(doc)
            except ModelSetupError:
                raise
            except Exception as exc:
                finish(i, exc)
                continue
            if hit is not None:
                finish(i, hit)
                continue
            self._check_output_budget()
            calls[i] = [0]
            flows[i] = self._flow(doc, calls[i])
            advance(i, None)
        while pending:
            groups: dict[GenerationParams, list[int]] = {}
            for i, request in pending.items():
                groups.setdefault(request.params, []).append(i)
            for params, members in groups.items():
                self._run_group(params, members, pending, calls, advance, finish)
        return [r if r is not None else RuntimeError("not summarised") for r in results]

    def _check_output_budget(self) -> None:
        """Structured summaries need room for every key: a too small output setting is a
        setup error (one line naming it), found before any document's work starts."""
        if self._budget_checked or not self.settings.gen_structured:
            return
        s = self.settings
        for short, setting, value in (
                (True, "SUMMARY_SHORT_MAX_NEW_TOKENS",
                 min(s.summary_short_max_new_tokens, s.max_new_tokens)),
                (False, "MAX_NEW_TOKENS", s.max_new_tokens)):
            needed = minimum_new_tokens(short, skeleton_tokens(self.backend.tokenizer, short))
            if value < needed:
                raise ModelSetupError(
                    f"BOEFLOW_{setting}={value} is too small for a structured summary of "
                    f"{self.backend.model_id}: at least {needed} tokens are needed")
        self._budget_checked = True

    def _run_group(self, params: GenerationParams, members: list[int],
                   pending: dict[int, Request], calls: dict[int, list[int]],
                   advance: Callable[[int, list[Output] | None], None],
                   finish: Callable[[int, Result], None]) -> None:
        """Generate the prompts of every document in ``members`` (same parameters) at once;
        if that batch fails, retry document by document so the failure stays with its own."""
        requests = {i: pending[i] for i in members}
        prompts = [m for i in members for m in requests[i].prompts]
        before = self.backend.generate_calls
        try:
            outputs = self._generate(prompts, params, requests[members[0]].stage)
        except ModelSetupError:
            raise
        except Exception as exc:
            if len(members) == 1:
                finish(members[0], exc)
                return
            for i in members:
                self._run_group(params, [i], pending, calls, advance, finish)
            return
        made = self.backend.generate_calls - before
        cursor = 0
        for i in members:
            n = len(requests[i].prompts)
            calls[i][0] += made
            advance(i, outputs[cursor:cursor + n])
            cursor += n

    def _flow(self, doc: SourceDocument, calls: list[int]) -> Flow:
        """One document's summary, as the prompts it needs in turn; ``calls[0]`` counts the
        batched generate calls its prompts took part in."""
        key = self.record_key(doc)
        s = self.settings
        logs: list[PromptLog] = []
        header = doc.header()
        short = doc.is_short_notice
        policy = length_policy(s, short)
        max_chars = policy.resumen_max
        final_new = s.summary_short_max_new_tokens if short else s.max_new_tokens
        final_new = min(final_new, s.max_new_tokens)
        one_pass = self.prompts.summary(header, doc.text, short=short, max_chars=max_chars,
                                        special_tokens=self._specials)
        mode: Literal["short", "one_pass", "map_reduce"]
        if self._fits(one_pass, final_new, self._repair_reserve(final_new)):
            mode = "short" if short else "one_pass"
            messages = one_pass
        else:
            mode = "map_reduce"
            notes = yield from self._map_reduce(doc, header, logs, final_new, max_chars)
            messages = self.prompts.final_from_notes(header, notes, max_chars=max_chars,
                                                     special_tokens=self._specials)
        constraint = SummaryConstraint(short=mode == "short", resumen_max_chars=max_chars)
        summary, raw, attempts, errors = yield from self._structured(
            messages, final_new, "short" if mode == "short" else "final", logs, constraint)
        if summary is not None:
            summary = fit_summary(summary, policy)  # the mode's length policy, not a flag
        record = SummaryRecord(
            doc_id=doc.id, cache_key=key, model=self.backend.model_id,
            revision=self.backend.revision, prompt_version=self.prompts.version,
            source_hash=doc.source_hash, backend=self.backend.name, smoke=self.backend.is_smoke,
            status="ok" if summary is not None else "failed", prompts=logs,
            generate_calls=calls[0], mode=mode, title=doc.title, summary=summary,
            raw_text=raw, attempts=attempts, errors=errors, structured=s.gen_structured)
        record.review = review_record(record, doc, s)
        self.store.save_record(record, doc.id, "summary", key)
        self.generated_ids.add(doc.id)
        return record


def review_record(record: SummaryRecord, doc: SourceDocument,
                  settings: Settings) -> ReviewResult:
    """The automatic review of a summary against everything the model saw of ``doc``."""
    policy = length_policy(settings, record.mode == "short")
    fields = (fit_summary(record.summary, policy).model_dump()
              if record.summary is not None else None)
    return review_summary(fields=fields, raw_text=record.raw_text, status=record.status,
                          errors=record.errors, source_text=doc.review_text(),
                          resumen_max_chars=policy.resumen_max,
                          resumen_min_chars=policy.resumen_min, max_points=policy.max_items,
                          source=doc.anchor_source(), language="es")
