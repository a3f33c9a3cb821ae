"""The ``transformers`` backend: the model in this process (``load_chat_model``: bf16 +
``device_map`` on GPU, CPU otherwise), prompts generated in length-sorted batches with left
padding (on CPU a batch of long prompts is prefilled row by row, unpadded, and decoded
together); a summary prompt is decoded under its JSON grammar (``boeflow.enrich.structured``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from boeflow.core.settings import Settings
from boeflow.enrich.backends.base import (
    Generation,
    GenerationParams,
    TokenizerMixin,
    capped_context_length,
)
from boeflow.enrich.prompts import Message
from boeflow.enrich.structured import GrammarConstraints
from boeflow.models.loading import load_chat_model

log = logging.getLogger(__name__)
# Prompt tokens per in-process generate call on CPU (longest prompt x prompts;
# BOEFLOW_GEN_BATCH_TOKENS overrides it): what the batch's key/value cache holds at the start.
CPU_BATCH_TOKENS = 16384
# On CPU a batch whose longest prompt has more tokens than this is prefilled row by row.
SPLIT_PREFILL_MIN_TOKENS = 512


class TransformersBackend(TokenizerMixin):
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
        self.context_length = capped_context_length(settings, self.chat.context_length)
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
