"""The `transformers` transport: an in-process transformers causal LM with a chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from syncxr.errors import UserError
from syncxr.fsio import missing_dependency
from syncxr.transports.base import ChatRequest, ChatResult, Message, complete_each


def _torch_dtype(name: str) -> Any:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name == "auto":
        return "auto"
    if name not in table:
        raise UserError(f"dtype {name!r} is not one of auto, {', '.join(table)}")
    return table[name]


class TransformersTransport:
    """In-process transformers causal LM; the tokenizer must carry a chat template."""

    def __init__(self, model: str | Path, device: str = "cpu", dtype: str = "auto", max_new_tokens: int = 512) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise missing_dependency("the transformers LLM transport", e, "train") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
            self.model = AutoModelForCausalLM.from_pretrained(str(model), dtype=_torch_dtype(dtype))
        except (OSError, ValueError) as e:
            raise UserError(
                f"could not load the LLM from {str(model)!r}: {e}. Expected a local folder or hub name of a "
                "transformers causal LM with its tokenizer."
            ) from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"the tokenizer of {str(model)!r} has no chat_template; use an instruct/chat model")
        self.model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.backend_id = f"transformers:{Path(str(model)).name}"

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        import torch

        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        n_prompt = enc["input_ids"].shape[1]
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens or self.max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        # generate() samples from the global torch RNG; fork it so seeding here leaves the
        # caller's RNG state untouched (library code never seeds global RNGs for good).
        devices = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**enc, pad_token_id=pad, **kwargs)  # (1, n_prompt + new)
        return self.tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True)

    def complete_batch(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One `generate` per request: each draws from its own seed, which a padded batch of
        `generate` cannot give (it shares one RNG stream)."""
        return complete_each(self, requests)

    def preflight(self) -> None:
        """Nothing to check: the model was loaded when this transport was built."""
