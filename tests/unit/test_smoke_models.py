"""The smoke models load through the production code paths and behave like their
architectures: XLM-RoBERTa + CLS pooling + normalisation, Llama + chat template."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from boeflow.core.settings import Settings
from boeflow.models.loading import (
    embedding_dimension,
    is_smoke_model,
    load_chat_model,
    load_embedder,
)

SPANISH = [
    "Artículo 14. Los españoles son iguales ante la ley.",
    "El plazo de presentación de solicitudes será de un mes.",
]


def test_embedder_is_xlm_roberta_with_bge_m3_head(smoke_settings: Settings) -> None:
    path = Path(smoke_settings.embed_model)
    assert AutoConfig.from_pretrained(path).model_type == "xlm-roberta"
    modules = json.loads((path / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Normalize"]
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode"] == "cls"
    assert is_smoke_model(str(path))


def test_embedder_encodes_spanish_to_unit_vectors(smoke_settings: Settings) -> None:
    model = SentenceTransformer(smoke_settings.embed_model, device="cpu")
    vectors = model.encode(SPANISH)
    assert vectors.shape == (2, embedding_dimension(smoke_settings))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    # The production loader gives the same vectors (same code path, same weights).
    again = load_embedder(smoke_settings).encode(SPANISH)
    np.testing.assert_allclose(vectors, again, atol=1e-5)


def test_tokenizer_was_trained_on_boe_text(smoke_settings: Settings) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smoke_settings.embed_model)
    # Frequent BOE words are single pieces, not character soup.
    for word in ("▁Real", "▁Decreto", "▁disposición", "▁Estado"):
        assert word in tokenizer.get_vocab(), word
    pieces = tokenizer.tokenize("Boletín Oficial del Estado")
    assert len(pieces) <= 6


def test_chat_models_generate_through_the_chat_template(smoke_settings: Settings) -> None:
    for ref in (smoke_settings.summarizer_model, smoke_settings.translator_model):
        assert AutoConfig.from_pretrained(ref).model_type == "llama"
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForCausalLM.from_pretrained(ref)
        messages = [{"role": "system", "content": "Resume el documento."},
                    {"role": "user", "content": SPANISH[0]}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               tokenize=False)
        assert prompt.endswith("<|im_start|>assistant\n")
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        assert output.shape[1] > inputs["input_ids"].shape[1]
        loaded = load_chat_model(smoke_settings, ref)
        assert loaded.is_smoke
        assert loaded.context_length == 8192
