"""The ``http`` backend: an OpenAI-compatible server (``vllm serve``, ``transformers
serve``) reached with httpx: per-request timeout, bounded concurrency (the server batches
continuously), retries with backoff; a summary prompt carries ``response_format``
``json_schema``. Prompt tokens are counted locally with the model's own tokenizer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from boeflow.core.settings import Settings, redact_url
from boeflow.enrich.backends.base import (
    Generation,
    GenerationParams,
    TokenizerMixin,
    capped_context_length,
)
from boeflow.enrich.prompts import Message
from boeflow.enrich.structured import response_format
from boeflow.models.loading import (
    ModelSetupError,
    is_smoke_model,
    load_tokenizer,
    model_context_length,
)


class HttpError(RuntimeError):
    pass


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):  # timeouts, refused or reset connections
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


class HttpBackend(TokenizerMixin):
    """An OpenAI-compatible ``/chat/completions`` endpoint (vLLM, transformers serve)."""

    name = "http"

    def __init__(self, settings: Settings, model_ref: str, revision: str | None = None,
                 role: str = "model") -> None:
        self.tokenizer = load_tokenizer(settings, model_ref, revision, role)
        self.model_id = model_ref
        self.revision = revision
        self.is_smoke = is_smoke_model(model_ref)
        self.context_length = capped_context_length(
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
