"""Generation backends, chosen by ``settings.gen_backend``.

* ``local``: ``transformers``, the model in this process, batched;
* ``http``: an OpenAI-compatible server (vLLM, transformers serve);
* ``base``: what both share (parameters, results, the ``Backend`` protocol, token counting
  with the model's own tokenizer and chat template).

``get_backend`` hands out one backend per process and (role, backend, model, revision,
device, …) from the process's model pool (``boeflow.models.pool``): it is lazy, so nothing
is loaded until a prompt must really be generated (a rerun of a finished day loads no
model), and every load is counted (``model_loads``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from boeflow.core.settings import Settings
from boeflow.enrich.backends.base import (
    Backend,
    ContextOverflowError,
    Generation,
    GenerationParams,
    capped_context_length,
)
from boeflow.enrich.backends.http import HttpBackend, HttpError
from boeflow.enrich.backends.local import (
    CPU_BATCH_TOKENS,
    SPLIT_PREFILL_MIN_TOKENS,
    TransformersBackend,
)
from boeflow.enrich.prompts import Message
from boeflow.models.loading import is_smoke_model, model_context_length, resolve_device
from boeflow.models.pool import GENERATOR, POOL, counts_since

__all__ = [
    "CPU_BATCH_TOKENS", "SPLIT_PREFILL_MIN_TOKENS", "Backend", "ContextOverflowError",
    "Generation", "GenerationParams", "HttpBackend", "HttpError", "LazyBackend",
    "TransformersBackend", "backend_key", "calls_since", "clear_backends", "generate_calls",
    "get_backend", "loads_since", "make_backend", "model_loads",
]

log = logging.getLogger(__name__)


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


def model_loads() -> dict[str, int]:
    """Backends built in this process so far, per role (a model load each)."""
    return POOL.loads(GENERATOR)


def loads_since(before: dict[str, int]) -> dict[str, int]:
    return POOL.loads_since(GENERATOR, before)


def generate_calls() -> dict[str, int]:
    """``generate`` calls made so far by this process's shared backends, per role."""
    calls: Counter[str] = Counter()
    for lazy in POOL.members(GENERATOR):
        calls[lazy.role] += lazy.generate_calls
    return dict(calls)


def calls_since(before: dict[str, int]) -> dict[str, int]:
    """The ``generate`` calls made since ``before`` (a ``generate_calls`` result), per role."""
    return counts_since(generate_calls(), before)


def clear_backends() -> None:
    """Close and forget every shared backend (the end of a process; tests; frees the
    models' memory and the HTTP backends' clients)."""
    POOL.close(GENERATOR)


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
            self._context_length = capped_context_length(self.settings, model_context_length(
                self.settings, self.model_id, self.revision, self.role))
        return self._context_length

    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                if self.settings.gen_backend == "transformers":
                    resolve_device(self.settings)  # no CUDA when asked for: one line, now
                started = time.perf_counter()
                self._backend = make_backend(self.settings, self.role)
                POOL.count_load(GENERATOR, self.role)
                log.info("loaded the %s model %s (%s) in %.1fs", self.role, self.model_id,
                         self.name, time.perf_counter() - started)
            return self._backend

    @property
    def generate_calls(self) -> int:
        return self._backend.generate_calls if self._backend is not None else 0

    def close(self) -> None:
        """Close the built backend if it has anything to close (an HTTP client)."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

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
    return POOL.get(GENERATOR, backend_key(settings, role),
                    lambda: LazyBackend(settings, role))
