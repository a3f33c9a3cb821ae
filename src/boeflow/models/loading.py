"""The one code path that loads models, for production ids and local directories alike.

A model reference is a Hugging Face hub id (``BAAI/bge-m3``) or a local directory. With
``hf_offline`` (the default: production machines do not reach the hub at run time) the hub
is never contacted and the weights must already be in the local cache or directory.
Revisions pin a hub commit so that a rerun uses the same weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boeflow.config import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SMOKE_MARKER = "boeflow_smoke.json"


def apply_offline_env(settings: Settings) -> None:
    """Set the Hugging Face offline switches before any hub library is used."""
    if settings.hf_offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def resolve_device(settings: Settings) -> str:
    if settings.device != "auto":
        return settings.device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def smoke_info(model_ref: str) -> dict[str, Any] | None:
    """The smoke marker of a local smoke model directory, or None for a real model."""
    marker = Path(model_ref) / SMOKE_MARKER
    if not marker.is_file():
        return None
    data: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
    return data


def is_smoke_model(model_ref: str) -> bool:
    return smoke_info(model_ref) is not None


def _local_only(settings: Settings, model_ref: str) -> bool:
    return settings.hf_offline or Path(model_ref).is_dir()


def load_embedder(settings: Settings, model_ref: str | None = None) -> SentenceTransformer:
    """A sentence-transformers embedder (bge-m3 or a drop-in) on the configured device."""
    apply_offline_env(settings)
    from sentence_transformers import SentenceTransformer

    ref = model_ref or settings.embed_model
    device = resolve_device(settings)
    kwargs: dict[str, Any] = {}
    if device == "cuda":
        import torch

        kwargs["model_kwargs"] = {"dtype": torch.float16}  # transformers 5 name
    model = SentenceTransformer(
        ref, device=device, revision=settings.embed_revision,
        local_files_only=_local_only(settings, ref), **kwargs,
    )
    model.max_seq_length = min(settings.embed_max_seq_length,
                               model.max_seq_length or settings.embed_max_seq_length)
    return model


def pooling_dimension(pooling_config: dict[str, Any]) -> int:
    """Output size from a sentence-transformers Pooling config (key renamed in v6)."""
    for key in ("embedding_dimension", "word_embedding_dimension"):
        if key in pooling_config:
            return int(pooling_config[key])
    raise KeyError("pooling config has no embedding dimension")


def embedding_dimension(settings: Settings, model_ref: str | None = None) -> int:
    """The embedder's output dimension, read from its configuration (not hard-coded)."""
    ref = model_ref or settings.embed_model
    config_path = Path(ref) / "config.json"
    pooling = Path(ref) / "1_Pooling" / "config.json"
    if pooling.is_file():
        return pooling_dimension(json.loads(pooling.read_text(encoding="utf-8")))
    if config_path.is_file():
        return int(json.loads(config_path.read_text(encoding="utf-8"))["hidden_size"])
    model = load_embedder(settings, ref)
    dim = model.get_embedding_dimension()
    if dim is None:
        raise ValueError(f"cannot determine the embedding dimension of {ref}")
    return int(dim)


@dataclass
class ChatModel:
    """A causal LM with its tokenizer (and chat template), ready for generation."""

    ref: str
    tokenizer: Any
    model: Any
    device: str

    @property
    def is_smoke(self) -> bool:
        return is_smoke_model(self.ref)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))


def load_chat_model(settings: Settings, model_ref: str, revision: str | None = None) -> ChatModel:
    """Load a Llama-architecture chat model (ALIA, Aitana or a smoke stand-in)."""
    apply_offline_env(settings)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(settings)
    local_only = _local_only(settings, model_ref)
    tokenizer = AutoTokenizer.from_pretrained(model_ref, revision=revision,
                                              local_files_only=local_only)
    if tokenizer.chat_template is None:
        raise ValueError(f"{model_ref} has no chat template; boeflow needs an instruct model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batched generation
    kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_only}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(model_ref, **kwargs)
    if device != "cuda":
        model.to(device)
    model.eval()
    return ChatModel(ref=model_ref, tokenizer=tokenizer, model=model, device=device)
