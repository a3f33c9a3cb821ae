"""Generation throughput of the summariser: batched in-process generation vs one at a time.

In one run, on the same prompts (the real short-summary prompt of each recorded BOE
document, text cut to ``--prompt-tokens``), with greedy decoding and the same
``max_new_tokens``:

* ours: ``TransformersBackend.generate`` with ``--batch-size`` prompts per ``generate`` call
  (left padding, prompts sorted by length);
* baseline: the same backend with batch size 1 (one ``generate`` call per prompt).

Reports generated tokens/s and documents/min for both, then one line
``BENCH enrich ours=<tokens/s> baseline=<tokens/s> unit=tokens/s ratio=<ours/baseline>``.

Smoke models on CPU (what CI runs)::

    BOEFLOW_PROFILE=smoke python benchmarks/enrich.py

Production models on a GPU (ALIA-7B in bf16 with ``device_map``; weights already in the
Hugging Face cache, since ``hf_offline`` is on by default)::

    BOEFLOW_PROFILE=production BOEFLOW_DEVICE=cuda \\
        python benchmarks/enrich.py --docs 32 --batch-size 16 --max-new-tokens 256 \\
        --prompt-tokens 3000

(add ``--role translator`` for Aitana-2B).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from boeflow.config import Settings
from boeflow.enrich.backends import GenerationParams, TransformersBackend
from boeflow.enrich.budget import hard_split
from boeflow.enrich.prompts import DEFAULT_SUMMARY_PROMPTS, Message
from boeflow.enrich.source import read_boe_xml

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "samples" / "boe" / "documents"


def build_prompts(backend: TransformersBackend, docs: int, prompt_tokens: int
                  ) -> list[list[Message]]:
    paths = sorted(DOCUMENTS.glob("*.xml"))
    prompts = []
    for i in range(docs):
        doc = read_boe_xml(paths[i % len(paths)])
        text = hard_split(doc.text, prompt_tokens, backend.tokenizer)[0]
        prompts.append(DEFAULT_SUMMARY_PROMPTS.summary(
            doc.header(), text, short=True, max_chars=500,
            special_tokens=backend.special_tokens()))
    return prompts


def run(backend: TransformersBackend, prompts: list[list[Message]], batch_size: int,
        params: GenerationParams) -> tuple[float, int]:
    backend.batch_size = batch_size
    started = time.perf_counter()
    results = backend.generate(prompts, params)
    elapsed = time.perf_counter() - started
    return elapsed, sum(r.completion_tokens for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["summarizer", "translator"], default="summarizer")
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (median)")
    parser.add_argument("--prompt-tokens", type=int, default=512,
                        help="document text per prompt (tokens of the model's tokenizer)")
    args = parser.parse_args()

    settings = Settings()
    ref = settings.summarizer_model if args.role == "summarizer" else settings.translator_model
    backend = TransformersBackend(settings, ref)
    prompts = build_prompts(backend, args.docs, args.prompt_tokens)
    params = GenerationParams.from_settings(settings, args.max_new_tokens)
    prompt_tokens = [backend.count_tokens(p) for p in prompts]
    print(f"model {ref} ({'smoke' if backend.is_smoke else 'production'}) on {backend.chat.device}"
          f"; {len(prompts)} prompts of {min(prompt_tokens)}–{max(prompt_tokens)} tokens; "
          f"max_new_tokens={args.max_new_tokens}; batch size {args.batch_size}")

    # Warm-up of both configurations (first calls on new shapes are slow on CPU), then
    # alternating measured rounds; the median round of each is reported.
    warm = GenerationParams.from_settings(settings, min(8, args.max_new_tokens))
    run(backend, prompts, 1, warm)
    run(backend, prompts, args.batch_size, warm)
    base_rounds, ours_rounds = [], []
    for _ in range(args.rounds):
        base_rounds.append(run(backend, prompts, 1, params))
        ours_rounds.append(run(backend, prompts, args.batch_size, params))
    base_time, base_tokens = sorted(base_rounds)[len(base_rounds) // 2]
    ours_time, ours_tokens = sorted(ours_rounds)[len(ours_rounds) // 2]

    base_rate = base_tokens / base_time
    ours_rate = ours_tokens / ours_time
    for name, elapsed, tokens in (("baseline (one at a time)", base_time, base_tokens),
                                  (f"ours (batch {args.batch_size})", ours_time, ours_tokens)):
        print(f"{name:26s} {elapsed:7.2f} s  {tokens:6d} tokens  {tokens / elapsed:9.1f} tokens/s"
              f"  {len(prompts) / elapsed * 60:8.1f} documents/min")
    print(f"BENCH enrich ours={ours_rate:.1f} baseline={base_rate:.1f} unit=tokens/s "
          f"ratio={ours_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
