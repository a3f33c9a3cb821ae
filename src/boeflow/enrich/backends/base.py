"""What every generation backend shares: the parameters of a generate call, its result, the
``Backend`` protocol, and prompt rendering and token counting with the model's own tokenizer
and chat template (so the token budget of every prompt is computed the same way whatever
runs the model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from boeflow.core.settings import Settings
from boeflow.enrich.prompts import Message
from boeflow.enrich.structured import SummaryConstraint


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


class TokenizerMixin:
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


def capped_context_length(settings: Settings, model_context: int) -> int:
    """The model's context, capped by ``gen_context_tokens`` when set."""
    if settings.gen_context_tokens:
        return min(settings.gen_context_tokens, model_context)
    return model_context

