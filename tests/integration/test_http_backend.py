"""The HTTP backend against a real OpenAI-compatible server on loopback: `transformers serve`
(from ``transformers[serving]``) serving the smoke summariser directory — not a mock.

Summary prompts carry ``response_format`` ``{"type": "json_schema"}`` (what vLLM enforces).
``transformers serve`` 5.23 accepts and ignores that field (it lists it as unsupported), so
against it the structured path is the fallback one: the random model's answer is not JSON,
the bounded repair loop runs, and the record ends ``failed`` with the raw text kept. The
payload itself is checked as sent, on the wire.

Needs no Elasticsearch/PostgreSQL, so it is not marked ``integration``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boeflow.core.settings import Settings
from boeflow.enrich.backends import GenerationParams, HttpBackend, get_backend, make_backend
from boeflow.enrich.structured import SummaryConstraint, summary_json_schema
from boeflow.enrich.summarize import Summarizer
from boeflow.models.loading import ModelSetupError
from boeflow.review.source import read_document
from boeflow_ops.services.common import free_port
from tests.conftest import DOCUMENTS

NOTICE_UV = DOCUMENTS / "BOE-B-2024-45529.xml"
SMALL = {"max_new_tokens": 200, "summary_short_max_new_tokens": 160, "summary_max_repairs": 1}


@pytest.fixture(scope="module")
def served_model(smoke_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, Path]]:
    """``transformers serve`` on 127.0.0.1 with the smoke summariser; stopped afterwards."""
    model_dir = smoke_models_dir / "summarizer"
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    serve = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(serve), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"{url}/v1", model_dir
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server's own session only
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _http_settings(base: Settings, url: str, model_dir: Path, **extra: object) -> Settings:
    return base.model_copy(update={**SMALL, "gen_backend": "http", "gen_http_url": url,
                                   "gen_http_model": str(model_dir), "gen_http_timeout": 60.0,
                                   "gen_http_concurrency": 2, **extra})


def test_summary_through_the_http_backend(smoke_settings: Settings,
                                          served_model: tuple[str, Path]) -> None:
    url, model_dir = served_model
    settings = _http_settings(smoke_settings, url, model_dir)
    backend = make_backend(settings, "summarizer")
    assert isinstance(backend, HttpBackend)
    assert backend.is_smoke and backend.context_length == 8192  # from the model's own config
    doc = read_document(NOTICE_UV)
    sent: list[dict[str, object]] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    backend.event_hooks = {"request": [capture]}
    record = Summarizer(settings, backend).summarize(doc)
    assert record.backend == "http" and record.smoke and record.structured
    assert record.generate_calls >= 1
    assert all(p.prompt_tokens + p.max_new_tokens <= p.context_length for p in record.prompts)
    # Every summary request carried the schema; the server answered (it ignores it).
    assert sent and all(body["response_format"] == {
        "type": "json_schema", "json_schema": {
            "name": "resumen_boe", "strict": True,
            "schema": summary_json_schema(SummaryConstraint(True, 500))}} for body in sent)
    # transformers serve does not enforce the schema: the random model's answer is not
    # JSON, the fallback repair loop ran, and the record keeps the raw text.
    assert record.status == "failed" and record.summary is None
    assert len(record.errors) == record.attempts == 2
    assert [p.stage for p in record.prompts] == ["short", "repair"]
    assert len(sent) == 2
    assert record.review is not None and record.review.needs_attention
    calls = backend.generate_calls
    Summarizer(settings, backend).summarize(doc)
    assert backend.generate_calls == calls  # stored: no request
    # One client and one event loop for the backend's life, not one per generate call.
    client = backend._client
    assert client is not None and record.generate_calls >= 2
    backend.generate([[{"role": "user", "content": "Resume: ayudas DANA."}]],
                     GenerationParams(max_new_tokens=4))
    assert backend._client is client and not client.is_closed
    backend.close()
    assert client.is_closed and backend._client is None


def test_concurrent_requests_keep_order(smoke_settings: Settings,
                                        served_model: tuple[str, Path]) -> None:
    url, model_dir = served_model
    backend = HttpBackend(_http_settings(smoke_settings, url, model_dir), str(model_dir))
    prompts = [[{"role": "user", "content": f"Resume el artículo {i} de la Ley 2/2025."}]
               for i in range(5)]
    results = backend.generate(prompts, GenerationParams(max_new_tokens=8))
    assert len(results) == 5
    assert backend.generate_calls == 5
    for prompt, result in zip(prompts, results, strict=True):
        assert result.prompt_tokens == backend.count_tokens(prompt)
        assert 0 < result.completion_tokens <= 8


def test_retries_then_fails_on_a_closed_port(smoke_settings: Settings,
                                             smoke_models_dir: Path) -> None:
    model_dir = smoke_models_dir / "summarizer"
    settings = _http_settings(smoke_settings, f"http://127.0.0.1:{free_port()}/v1", model_dir,
                              gen_http_retries=3, gen_http_timeout=2.0)
    backend = HttpBackend(settings, str(model_dir))
    # Nothing listens: a setup error for the whole run, naming the setting, not a per-
    # document failure repeated for every document.
    with pytest.raises(ModelSetupError, match="BOEFLOW_GEN_HTTP_URL"):
        backend.generate([[{"role": "user", "content": "hola"}]],
                         GenerationParams(max_new_tokens=4))
    assert backend.generate_calls == 3  # every attempt was made, then the error surfaced


def test_shared_backend_is_lazy_and_loaded_once(smoke_settings: Settings,
                                                served_model: tuple[str, Path]) -> None:
    from boeflow.enrich.backends import clear_backends, model_loads

    url, model_dir = served_model
    settings = _http_settings(smoke_settings, url, model_dir)
    clear_backends()
    before = model_loads().get("summarizer", 0)
    backend = get_backend(settings, "summarizer")
    assert not backend.loaded and backend.context_length == 8192  # from config.json alone
    assert get_backend(settings, "summarizer") is backend
    backend.generate([[{"role": "user", "content": "hola"}]], GenerationParams(max_new_tokens=4))
    backend.generate([[{"role": "user", "content": "adiós"}]], GenerationParams(max_new_tokens=4))
    assert backend.loaded and model_loads()["summarizer"] == before + 1


def test_timeout_is_enforced(smoke_settings: Settings,
                             served_model: tuple[str, Path]) -> None:
    url, model_dir = served_model
    settings = _http_settings(smoke_settings, url, model_dir, gen_http_timeout=0.001,
                              gen_http_retries=2)
    backend = HttpBackend(settings, str(model_dir))
    with pytest.raises(httpx.TimeoutException):
        backend.generate([[{"role": "user", "content": "hola"}]],
                         GenerationParams(max_new_tokens=64))
    assert backend.generate_calls == 2
