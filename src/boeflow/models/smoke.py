"""Tiny stand-in models of the production architectures, built offline from the BOE samples.

* ``embedder/``: XLM-RoBERTa encoder (bge-m3's architecture) saved as a sentence-transformers
  model with bge-m3's head: CLS pooling then L2 normalisation.
* ``summarizer/`` and ``translator/``: Llama-architecture causal LMs (ALIA's and Aitana's
  architecture) with a chat template.

Weights are randomly initialised from a fixed seed: the models exercise the real loading,
tokenisation, batching and generation code paths, not quality. Every directory carries
``boeflow_smoke.json`` so their outputs are labelled as smoke outputs wherever they appear.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from boeflow.core.settings import SMOKE_EMBEDDER, SMOKE_SUMMARIZER, SMOKE_TRANSLATOR
from boeflow.models.loading import SMOKE_MARKER, pooling_dimension

SEED = 20241106
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..4
CHAT_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]

# ChatML, as used by ALIA's instruct models; generation stops at <|im_end|>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SAFE_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False,
}


@dataclass(frozen=True)
class SmokeModels:
    root: Path
    embedder: Path
    summarizer: Path
    translator: Path
    embedding_dim: int


def sample_texts(samples_dir: Path) -> Iterator[str]:
    """Plain text of every recorded BOE document and sumario (titles) in the samples."""
    parser = etree.XMLParser(**SAFE_PARSER_OPTIONS)
    for path in sorted(samples_dir.rglob("*.xml")):
        try:
            root = etree.parse(str(path), parser).getroot()
        except etree.XMLSyntaxError:
            continue
        text = " ".join(t.strip() for t in root.itertext() if t.strip())
        for paragraph in re.split(r"(?<=[.;:])\s+", text):
            if paragraph:
                yield paragraph


def _write_marker(directory: Path, role: str, stands_in_for: str, extra: dict[str, Any]) -> None:
    marker = {
        "smoke": True,
        "role": role,
        "stands_in_for": stands_in_for,
        "note": "Tiny randomly initialised model for offline tests; outputs are NOT meaningful.",
        "seed": SEED,
        **extra,
    }
    (directory / SMOKE_MARKER).write_text(json.dumps(marker, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")


def build_xlmr_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=XLMR_SPECIALS,
                                      unk_token="<unk>", max_piece_length=16)
    tok.train_from_iterator(texts, trainer=trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=512)


def build_chat_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                   eos_token="<|im_end|>", pad_token="<|pad|>",
                                   unk_token=None, model_max_length=8192)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_embedder(out: Path, texts: list[str], hidden_size: int = 128) -> int:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(SEED)
    tokenizer = build_xlmr_tokenizer(texts, vocab_size=8000)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=hidden_size * 2,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    hf_dir = out / "_hf"
    XLMRobertaModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=512)
    pooling = models.Pooling(hidden_size, pooling_mode="cls")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    model.save(str(out))
    shutil.rmtree(hf_dir)
    return hidden_size


def build_chat_model(out: Path, texts: list[str], context: int, seed_offset: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED + seed_offset)
    tokenizer = build_chat_tokenizer(texts, vocab_size=4000)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_smoke_models(out: Path, samples_dir: Path, force: bool = False) -> SmokeModels:
    """Build (or reuse) the three smoke models under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    texts = list(sample_texts(samples_dir))
    if not texts:
        raise ValueError(f"no BOE sample texts found under {samples_dir}")
    embedder = out / SMOKE_EMBEDDER
    summarizer = out / SMOKE_SUMMARIZER
    translator = out / SMOKE_TRANSLATOR
    built = {"samples": str(samples_dir), "training_segments": len(texts)}

    def _fresh(directory: Path) -> Path | None:
        if (directory / SMOKE_MARKER).is_file() and not force:
            return None
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def _commit(staging: Path, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)

    if (staging := _fresh(embedder)) is not None:
        dim = build_embedder(staging, texts)
        _write_marker(staging, "embedder", "BAAI/bge-m3", {**built, "dimension": dim})
        _commit(staging, embedder)
    for offset, (directory, role, real) in enumerate(
        [(summarizer, "summarizer", "SINAI/ALIA-legal-administrative-7B-Instruct"),
         (translator, "translator", "gplsi/Aitana-2B-SI-Instruct-Aligned")], start=1):
        if (staging := _fresh(directory)) is not None:
            build_chat_model(staging, texts, context=8192, seed_offset=offset)
            _write_marker(staging, role, real, built)
            _commit(staging, directory)
    pooling = json.loads((embedder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    return SmokeModels(out, embedder, summarizer, translator, pooling_dimension(pooling))
