"""The one code path that loads models, for production ids and local directories alike.

A model reference is a Hugging Face hub id (``BAAI/bge-m3``) or a local directory. With
``hf_offline`` (the default: production machines do not reach the hub at run time) the hub
is never contacted and the weights must already be in the local cache or directory.
Revisions pin a hub commit so that a rerun uses the same weights.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boeflow.core.errors import BoeflowError, one_line
from boeflow.core.settings import Settings
from boeflow.models.pool import EMBEDDER, POOL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SMOKE_MARKER = "boeflow_smoke.json"

# The setting that names each role's model, for error messages.
MODEL_SETTINGS = {"summarizer": "BOEFLOW_SUMMARIZER_MODEL",
                  "translator": "BOEFLOW_TRANSLATOR_MODEL", "embedder": "BOEFLOW_EMBED_MODEL"}


class ModelSetupError(BoeflowError):
    """A model cannot be used at all (missing weights, no CUDA, server down): the run must
    stop at once with this one line, instead of failing every document the same way."""


def apply_offline_env(settings: Settings) -> None:
    """Set the Hugging Face offline switches before any hub library is used, and keep the
    libraries quiet (no per-load "Loading weights" bars, no "Token indices sequence length
    is longer than…" warnings: long documents are split on purpose)."""
    if settings.hf_offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    quiet_libraries()


def quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_device(settings: Settings) -> str:
    if settings.device != "auto":
        if settings.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ModelSetupError("BOEFLOW_DEVICE=cuda but CUDA is not available on this "
                                      "machine: set BOEFLOW_DEVICE=auto or cpu")
        return settings.device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def check_model_ref(settings: Settings, model_ref: str, role: str) -> None:
    """Fail with one line naming the setting when a local model directory is missing."""
    setting = MODEL_SETTINGS.get(role, "the model setting")
    path = Path(model_ref)
    local = settings.is_smoke or path.is_absolute() or model_ref.startswith((".", "~"))
    if not local or path.is_dir():
        return
    if settings.is_smoke:
        raise ModelSetupError(
            f"smoke {role} model not found at {model_ref} (BOEFLOW_SMOKE_MODELS_DIR="
            f"{settings.smoke_models_dir}): run `boeflow models smoke` to build it, or point "
            f"{setting} at a model directory")
    raise ModelSetupError(f"{role} model directory {model_ref} does not exist ({setting})")


def missing_weights(settings: Settings, model_ref: str, role: str,
                    exc: BaseException) -> ModelSetupError:
    """The one-line error for weights that could not be loaded."""
    setting = MODEL_SETTINGS.get(role, "the model setting")
    if Path(model_ref).is_dir():
        return ModelSetupError(f"cannot load the {role} model from {model_ref} ({setting}): "
                               f"{type(exc).__name__}: {one_line(exc, 200)}")
    hint = ("BOEFLOW_HF_OFFLINE is on, so the weights must already be in the local Hugging "
            f"Face cache: download them once (`hf download {model_ref}`)" if settings.hf_offline
            else "the hub could not provide them")
    return ModelSetupError(f"weights of {model_ref} ({setting}) not found: {hint}, or point "
                           f"{setting} at a local directory")


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


# Embedding models loaded in this process, by reference: the process's pool (shared_embedder)
# keeps this at one per model (tests count it).
EMBEDDER_LOADS: Counter[str] = POOL.load_counter(EMBEDDER)


def load_embedder(settings: Settings, model_ref: str | None = None) -> SentenceTransformer:
    """A sentence-transformers embedder (bge-m3 or a drop-in) on the configured device."""
    apply_offline_env(settings)
    from sentence_transformers import SentenceTransformer

    ref = model_ref or settings.embed_model
    check_model_ref(settings, ref, "embedder")
    device = resolve_device(settings)
    kwargs: dict[str, Any] = {}
    if device == "cuda":
        import torch

        kwargs["model_kwargs"] = {"dtype": torch.float16}  # transformers 5 name
    try:
        model = SentenceTransformer(
            ref, device=device, revision=settings.embed_revision,
            local_files_only=_local_only(settings, ref), **kwargs,
        )
    except OSError as exc:
        raise missing_weights(settings, ref, "embedder", exc) from exc
    model.max_seq_length = min(settings.embed_max_seq_length,
                               model.max_seq_length or settings.embed_max_seq_length)
    POOL.count_load(EMBEDDER, ref)
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


def load_tokenizer(settings: Settings, model_ref: str, revision: str | None = None,
                   role: str = "model") -> Any:
    """The tokenizer (with its chat template) of a generation model, or one clear error."""
    apply_offline_env(settings)
    from transformers import AutoTokenizer

    check_model_ref(settings, model_ref, role)
    try:
        return AutoTokenizer.from_pretrained(model_ref, revision=revision,
                                             local_files_only=_local_only(settings, model_ref))
    except OSError as exc:
        raise missing_weights(settings, model_ref, role, exc) from exc


def model_context_length(settings: Settings, model_ref: str, revision: str | None = None,
                         role: str = "model") -> int:
    """The model's context length from its configuration alone (no weights loaded)."""
    apply_offline_env(settings)
    from transformers import AutoConfig

    check_model_ref(settings, model_ref, role)
    try:
        config = AutoConfig.from_pretrained(model_ref, revision=revision,
                                            local_files_only=_local_only(settings, model_ref))
    except OSError as exc:
        raise missing_weights(settings, model_ref, role, exc) from exc
    return int(getattr(config, "max_position_embeddings", 2048))


def load_chat_model(settings: Settings, model_ref: str, revision: str | None = None,
                    role: str = "model") -> ChatModel:
    """Load a Llama-architecture chat model (ALIA, Aitana or a smoke stand-in)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = resolve_device(settings)
    local_only = _local_only(settings, model_ref)
    tokenizer = load_tokenizer(settings, model_ref, revision, role)
    if tokenizer.chat_template is None:
        raise ValueError(f"{model_ref} has no chat template; boeflow needs an instruct model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batched generation
    kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_only}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(model_ref, **kwargs)
    except OSError as exc:
        raise missing_weights(settings, model_ref, role, exc) from exc
    if device != "cuda":
        model.to(device)
    model.eval()
    return ChatModel(ref=model_ref, tokenizer=tokenizer, model=model, device=device)
