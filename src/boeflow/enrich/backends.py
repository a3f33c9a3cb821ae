"""Generation backends, chosen by ``settings.gen_backend``.

* ``transformers``: the model in this process (``load_chat_model``: bf16 + ``device_map`` on
  GPU, CPU otherwise), prompts generated in length-sorted batches with left padding (on CPU
  a batch of long prompts is prefilled row by row, unpadded, and decoded together); a
  summary prompt is decoded under its JSON grammar (``boeflow.enrich.structured``).
* ``http``: an OpenAI-compatible server (``vllm serve``, ``transformers serve``) reached
  with httpx: per-request timeout, bounded concurrency (the server batches continuously),
  retries with backoff; a summary prompt carries ``response_format`` ``json_schema``.

Both count prompt tokens with the model's own tokenizer and chat template, so the token
budget of every prompt is computed the same way whatever runs the model.

``get_backend`` hands out one backend per process and (role, backend, model, revision,
device, …): it is lazy, so nothing is loaded until a prompt must really be generated (a
rerun of a finished day loads no model), and every load is counted (``model_loads``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from boeflow.core.settings import Settings, redact_url
from boeflow.enrich.prompts import Message
from boeflow.enrich.structured import GrammarConstraints, SummaryConstraint, response_format
from boeflow.models.loading import (
    ModelSetupError,
    is_smoke_model,
    load_chat_model,
    load_tokenizer,
    model_context_length,
    resolve_device,
)

log = logging.getLogger(__name__)
# Prompt tokens per in-process generate call on CPU (longest prompt x prompts;
# BOEFLOW_GEN_BATCH_TOKENS overrides it): what the batch's key/value cache holds at the start.
CPU_BATCH_TOKENS = 16384
# On CPU a batch whose longest prompt has more tokens than this is prefilled row by row.
SPLIT_PREFILL_MIN_TOKENS = 512


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    constraint: SummaryConstraint | None = None

    @classmethod
    def from_settings(cls, settings: Settings, max_new_tokens: int,
                      constraint: SummaryConstraint | None = None) -> GenerationParams:
        return cls(max_new_tokens=max_new_tokens, do_sample=settings.gen_do_sample,
                   temperature=settings.gen_temperature, top_p=settings.gen_top_p,
                   repetition_penalty=settings.gen_repetition_penalty,
                   constraint=constraint if settings.gen_structured else None)

    def fingerprint(self) -> dict[str, Any]:
        """What changes the output; part of every cache key. Greedy ignores temperature."""
        data = asdict(self)
        if not self.do_sample:
            data.pop("temperature")
            data.pop("top_p")
        data.pop("constraint")
        if self.constraint is not None:
            data["constraint"] = self.constraint.fingerprint()
        return data


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


class ContextOverflowError(ValueError):
    """A prompt plus its output would not fit the model's context: a budgeting bug."""


class Backend(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def revision(self) -> str | None: ...

    @property
    def is_smoke(self) -> bool: ...

    @property
    def context_length(self) -> int: ...

    @property
    def generate_calls(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def count_tokens(self, messages: list[Message]) -> int: ...

    def special_tokens(self) -> list[str]: ...

    def generate(self, prompts: Sequence[list[Message]],
                 params: GenerationParams) -> list[Generation]: ...


class _TokenizerMixin:
    """Prompt rendering and token counting with the model's own tokenizer."""

    tokenizer: Any
    context_length: int

    def render(self, messages: list[Message]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True))

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def count_text_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def special_tokens(self) -> list[str]:
        tokens = set(self.tokenizer.all_special_tokens)
        tokens.update(str(t) for t in getattr(self.tokenizer, "added_tokens_decoder", {})
                      .values())
        return sorted(tokens)

    def check_fits(self, prompt_tokens: int, params: GenerationParams) -> None:
        if prompt_tokens + params.max_new_tokens > self.context_length:
            raise ContextOverflowError(
                f"prompt of {prompt_tokens} tokens + {params.max_new_tokens} new tokens "
                f"exceeds the context of {self.context_length}")


def _context_length(settings: Settings, model_context: int) -> int:
    if settings.gen_context_tokens:
        return min(settings.gen_context_tokens, model_context)
    return model_context


class TransformersBackend(_TokenizerMixin):
    """The model in this process; prompts are generated ``gen_batch_size`` at a time, fewer
    when their padded length would pass ``gen_batch_tokens``."""

    name = "transformers"

    def __init__(self, settings: Settings, model_ref: str, revision: str | None = None,
                 batch_size: int | None = None, role: str = "model") -> None:
        self.chat = load_chat_model(settings, model_ref, revision, role)
        self.tokenizer = self.chat.tokenizer
        self.model_id = model_ref
        self.revision = revision
        self.is_smoke = self.chat.is_smoke
        self.context_length = _context_length(settings, self.chat.context_length)
        self.batch_size = batch_size or settings.gen_batch_size
        # On CPU, PyTorch's attention takes its fused causal path only for an unpadded batch;
        # a padded batch of long prompts runs the math kernel over batch x length^2 scores
        # (six map prompts of the 174k-character Real Decreto-ley took 8.8 s in one batch and
        # 3.7 s one by one with the smoke model). So on CPU a batch of long prompts is
        # prefilled one unpadded row at a time and only the decoding steps are batched
        # (``_prefill_rows``): eight 4,000-token summary prompts cost 1.8 s of CPU that way,
        # 2.4 s one by one and 4.3 s as one padded batch.
        self.split_prefill = not str(self.chat.device).startswith("cuda")
        self.batch_tokens = settings.gen_batch_tokens or (
            None if not self.split_prefill else CPU_BATCH_TOKENS)
        self.generate_calls = 0
        self.stop_ids = self._stop_ids()
        self._grammars: GrammarConstraints | None = None

    @property
    def grammars(self) -> GrammarConstraints:
        if self._grammars is None:
            eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>") \
                if "<|im_end|>" in self.tokenizer.get_vocab() else self.tokenizer.eos_token_id
            self._grammars = GrammarConstraints(
                self.tokenizer, [int(eos), *[i for i in self.stop_ids if i != eos]])
        return self._grammars

    def _stop_ids(self) -> list[int]:
        configured = self.chat.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else
                  [configured] if configured is not None else [])
        for token in ("<|im_end|>", "<|eot_id|>", self.tokenizer.eos_token):
            if token and token in self.tokenizer.get_vocab():
                ids.add(int(self.tokenizer.convert_tokens_to_ids(token)))
        return sorted(ids)

    def generate(self, prompts: Sequence[list[Message]],
                 params: GenerationParams) -> list[Generation]:
        import torch

        texts = [self.render(m) for m in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        for length in lengths:
            self.check_fits(length, params)
        # Similar lengths together: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: lengths[i], reverse=True)
        results: list[Generation | None] = [None] * len(texts)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens, "do_sample": params.do_sample,
            "repetition_penalty": params.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.stop_ids,
        }
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        for batch in self._batches(order, lengths):
            encoded = self.tokenizer([texts[i] for i in batch], return_tensors="pt",
                                     padding=True, add_special_tokens=False)
            encoded = {k: v.to(self.chat.device) for k, v in encoded.items()}
            self.generate_calls += 1
            started = time.perf_counter()
            extra: dict[str, Any] = {}
            if params.constraint is not None:
                extra["logits_processor"] = [self.grammars.processor(
                    params.constraint, params.max_new_tokens, len(batch),
                    int(encoded["input_ids"].shape[1]))]
            with torch.inference_mode():
                if self.split_prefill and len(batch) > 1 \
                        and lengths[batch[0]] > SPLIT_PREFILL_MIN_TOKENS:
                    extra["past_key_values"] = self._prefill_rows(
                        encoded["input_ids"], encoded["attention_mask"])
                output = self.chat.model.generate(**encoded, **kwargs, **extra)
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for row, index in enumerate(batch):
                ids = new_tokens[row].tolist()
                count = len(ids)
                for position, token in enumerate(ids):
                    if token in self.stop_ids:
                        count = position + 1
                        break
                text = self.tokenizer.decode(ids[:count], skip_special_tokens=True)
                results[index] = Generation(text=text.strip(), prompt_tokens=lengths[index],
                                            completion_tokens=count)
            log.debug("generated batch of %d in %.2fs", len(batch),
                      time.perf_counter() - started)
        return [r for r in results if r is not None]

    def _prefill_rows(self, input_ids: Any, attention_mask: Any) -> Any:
        """The key/value cache of a left-padded batch, all but each prompt's last token, made
        one row at a time without padding (the fused causal attention kernel, no
        length x length mask) and left-padded into one batch cache: ``generate`` then runs
        only the last prompt token and the new ones, batched. The same tokens, positions and
        masks as one padded prefill."""
        import torch
        from torch.nn.functional import pad
        from transformers import DynamicCache

        width = int(input_ids.shape[1])
        rows: list[list[tuple[Any, Any]]] = []
        for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
            length = int(length)
            if length < 2:  # nothing to cache before the last token: zeros, all masked
                rows.append([])
                continue
            cache = self.chat.model(input_ids=input_ids[row:row + 1, width - length:width - 1],
                                    use_cache=True, logits_to_keep=1).past_key_values
            missing = width - length
            rows.append([(pad(layer.keys, (0, 0, missing, 0)),
                          pad(layer.values, (0, 0, missing, 0))) for layer in cache.layers])
        template = next(r for r in rows if r)
        for i, layers in enumerate(rows):
            if not layers:
                rows[i] = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in template]
        data = [(torch.cat([r[layer][0] for r in rows]), torch.cat([r[layer][1] for r in rows]))
                for layer in range(len(template))]
        return DynamicCache(ddp_cache_data=data, config=self.chat.model.config)

    def _batches(self, order: list[int], lengths: list[int]) -> Iterator[list[int]]:
        """Consecutive prompts of ``order`` (longest first), at most ``batch_size`` per batch
        and, past the first, only while longest x count stays within ``batch_tokens``."""
        batch: list[int] = []
        for index in order:
            if batch and (len(batch) >= self.batch_size or (
                    self.batch_tokens is not None
                    and lengths[batch[0]] * (len(batch) + 1) > self.batch_tokens)):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch


class HttpError(RuntimeError):
    pass


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):  # timeouts, refused or reset connections
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


class HttpBackend(_TokenizerMixin):
    """An OpenAI-compatible ``/chat/completions`` endpoint (vLLM, transformers serve)."""

    name = "http"

    def __init__(self, settings: Settings, model_ref: str, revision: str | None = None,
                 role: str = "model") -> None:
        self.tokenizer = load_tokenizer(settings, model_ref, revision, role)
        self.model_id = model_ref
        self.revision = revision
        self.is_smoke = is_smoke_model(model_ref)
        self.context_length = _context_length(
            settings, model_context_length(settings, model_ref, revision, role))
        self.served_model = settings.gen_http_model or model_ref
        self.base_url = settings.gen_http_url.rstrip("/")
        self.timeout = settings.gen_http_timeout
        self.concurrency = settings.gen_http_concurrency
        self.attempts = settings.gen_http_retries
        self.api_key = (settings.gen_http_api_key.get_secret_value()
                        if settings.gen_http_api_key else None)
        self.generate_calls = 0
        # httpx event hooks ({"request": [...], "response": [...]}), e.g. for tracing; set
        # before the first generate call (the client is built then).
        self.event_hooks: dict[str, list[Any]] = {}
        # One client (its connection pool) and one event loop for the backend's life, not
        # one per generate call; closed by close().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def _payload(self, messages: list[Message], params: GenerationParams) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.served_model, "messages": messages,
                                   "max_tokens": params.max_new_tokens, "stream": False}
        if params.do_sample:
            payload.update(temperature=params.temperature, top_p=params.top_p)
        else:
            payload["temperature"] = 0.0  # greedy on vLLM
        if params.repetition_penalty != 1.0:
            payload["repetition_penalty"] = params.repetition_penalty  # vLLM extension
        if params.constraint is not None:
            payload["response_format"] = response_format(params.constraint)
        return payload

    async def _one(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore,
                   messages: list[Message], prompt_tokens: int,
                   params: GenerationParams) -> Generation:
        async with semaphore:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.5, max=10),
                retry=retry_if_exception(_retryable), reraise=True,
            ):
                with attempt:
                    self.generate_calls += 1
                    response = await client.post("/chat/completions",
                                                 json=self._payload(messages, params))
                    response.raise_for_status()
                    data = response.json()
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise HttpError(f"unexpected response from {self.base_url}: {data!r:.300}") from exc
        usage = data.get("usage") or {}
        completion = int(usage.get("completion_tokens") or self.count_text_tokens(text))
        return Generation(text=text.strip(), prompt_tokens=prompt_tokens,
                          completion_tokens=completion)

    async def _generate(self, prompts: Sequence[list[Message]], lengths: list[int],
                        params: GenerationParams) -> list[Generation]:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
            limits = httpx.Limits(max_connections=self.concurrency)
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                             headers=headers, limits=limits,
                                             event_hooks=self.event_hooks)
        semaphore = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(
            self._one(self._client, semaphore, m, n, params)
            for m, n in zip(prompts, lengths, strict=True))))

    def close(self) -> None:
        """Close the client and its event loop (a later generate call opens new ones)."""
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                if self._client is not None:
                    self._loop.run_until_complete(self._client.aclose())
                self._loop.close()
            self._client, self._loop = None, None

    def generate(self, prompts: Sequence[list[Message]],
                 params: GenerationParams) -> list[Generation]:
        lengths = [self.count_tokens(m) for m in prompts]
        for length in lengths:
            self.check_fits(length, params)
        try:
            with self._lock:
                if self._loop is None or self._loop.is_closed():
                    self._loop, self._client = asyncio.new_event_loop(), None
                return self._loop.run_until_complete(self._generate(prompts, lengths, params))
        except httpx.ConnectError as exc:
            # Nothing listens there: every document would fail the same way.
            raise ModelSetupError(
                f"generation server {redact_url(self.base_url)} unreachable after "
                f"{self.attempts} attempts (BOEFLOW_GEN_HTTP_URL): {exc}") from exc


def _model_of(settings: Settings, role: str) -> tuple[str, str | None]:
    if role == "summarizer":
        return settings.summarizer_model, settings.summarizer_revision
    if role == "translator":
        return settings.translator_model, settings.translator_revision
    raise ValueError(f"unknown model role {role!r}")


def make_backend(settings: Settings, role: str) -> Backend:
    """A new backend for ``role`` ("summarizer" or "translator"), loaded now. Pipelines use
    ``get_backend`` (shared, lazy, counted) instead."""
    ref, revision = _model_of(settings, role)
    if settings.gen_backend == "http":
        return HttpBackend(settings, ref, revision, role=role)
    return TransformersBackend(settings, ref, revision, role=role)


# --- one backend per process and model, loaded on first use --------------------------------

_LOADS: Counter[str] = Counter()
_POOL: dict[tuple[Any, ...], LazyBackend] = {}
_POOL_LOCK = threading.Lock()


def model_loads() -> dict[str, int]:
    """Backends built in this process so far, per role (a model load each)."""
    return dict(_LOADS)


def loads_since(before: dict[str, int]) -> dict[str, int]:
    now = model_loads()
    return {role: n - before.get(role, 0) for role, n in now.items() if n - before.get(role, 0)}


def generate_calls() -> dict[str, int]:
    """``generate`` calls made so far by this process's shared backends, per role."""
    with _POOL_LOCK:
        pooled = list(_POOL.values())
    calls: Counter[str] = Counter()
    for lazy in pooled:
        calls[lazy.role] += lazy.generate_calls
    return dict(calls)


def clear_backends() -> None:
    """Close and forget every shared backend (the end of a process; tests; frees the
    models' memory and the HTTP backends' clients)."""
    with _POOL_LOCK:
        pooled = list(_POOL.values())
        _POOL.clear()
    for lazy in pooled:
        close = getattr(lazy.loaded_backend(), "close", None)
        if close is not None:
            close()


def backend_key(settings: Settings, role: str) -> tuple[Any, ...]:
    ref, revision = _model_of(settings, role)
    key: tuple[Any, ...] = (role, settings.gen_backend, ref, revision, settings.device,
                            settings.gen_context_tokens, settings.hf_offline)
    if settings.gen_backend == "http":
        key += (settings.gen_http_url, settings.gen_http_model, settings.gen_http_timeout,
                settings.gen_http_concurrency, settings.gen_http_retries)
    else:
        key += (settings.gen_batch_size, settings.gen_batch_tokens)
    return key


class LazyBackend:
    """A backend that is built (and counted) on first real use.

    Its identity (model id, revision, smoke flag, context length) comes from the settings and
    the model's configuration file, so cache keys are computed without loading any weights.
    """

    def __init__(self, settings: Settings, role: str) -> None:
        self.settings = settings
        self.role = role
        self.name: str = settings.gen_backend
        self.model_id, self.revision = _model_of(settings, role)
        self.is_smoke = is_smoke_model(self.model_id)
        self._context_length: int | None = None
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def loaded_backend(self) -> Backend | None:
        """The backend if it was built (never builds it)."""
        return self._backend

    @property
    def context_length(self) -> int:
        if self._backend is not None:
            return self._backend.context_length
        if self._context_length is None:
            self._context_length = _context_length(self.settings, model_context_length(
                self.settings, self.model_id, self.revision, self.role))
        return self._context_length

    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                if self.settings.gen_backend == "transformers":
                    resolve_device(self.settings)  # no CUDA when asked for: one line, now
                started = time.perf_counter()
                self._backend = make_backend(self.settings, self.role)
                _LOADS[self.role] += 1
                log.info("loaded the %s model %s (%s) in %.1fs", self.role, self.model_id,
                         self.name, time.perf_counter() - started)
            return self._backend

    @property
    def generate_calls(self) -> int:
        return self._backend.generate_calls if self._backend is not None else 0

    @property
    def tokenizer(self) -> Any:
        return self.backend().tokenizer

    def count_tokens(self, messages: list[Message]) -> int:
        return self.backend().count_tokens(messages)

    def special_tokens(self) -> list[str]:
        return self.backend().special_tokens()

    def generate(self, prompts: Sequence[list[Message]],
                 params: GenerationParams) -> list[Generation]:
        return self.backend().generate(prompts, params)


def get_backend(settings: Settings, role: str) -> LazyBackend:
    """The process's shared backend for ``role`` under these settings (not loaded yet)."""
    key = backend_key(settings, role)
    with _POOL_LOCK:
        backend = _POOL.get(key)
        if backend is None:
            backend = _POOL[key] = LazyBackend(settings, role)
        return backend
