"""The `vllm` transport: the offline vLLM engine in this process (GPU only, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from syncxr.errors import UserError
from syncxr.fsio import missing_dependency
from syncxr.transports.base import ChatRequest, ChatResult, LLMBadReply, Message, TransportError


class VLLMTransport:
    """Offline vLLM engine (GPU only): `complete_batch` sends all conversations in one
    `LLM.chat` call with one SamplingParams (and seed) per conversation, so vLLM batches them
    continuously and an answer does not depend on its batch-mates' seeds."""

    def __init__(self, model: str | Path, max_new_tokens: int = 512, **engine_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as e:
            needed = missing_dependency("the vllm LLM transport (GPU only)", e, None, "vllm")
            raise UserError(f"{needed}; or run `vllm serve MODEL` and use transport: openai with base_url "
                            "http://127.0.0.1:8000/v1") from None
        self.llm = LLM(model=str(model), **engine_kwargs)
        self.max_new_tokens = max_new_tokens
        self.backend_id = f"vllm:{Path(str(model)).name}"

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        result = self.complete_batch([ChatRequest(messages, temperature, max_tokens, seed)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def complete_batch(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """All conversations in one `LLM.chat` call; answers in request order."""
        if not requests:
            return []
        from vllm import SamplingParams

        params = [
            SamplingParams(temperature=r.temperature, max_tokens=r.max_tokens or self.max_new_tokens, seed=r.seed)
            for r in requests
        ]
        try:
            outputs = self.llm.chat([r.messages for r in requests], params, use_tqdm=False)
        except Exception as e:  # the engine failed (CUDA OOM, dead worker): the shard fails
            raise TransportError(f"vLLM chat call failed for {len(requests)} conversation(s): {type(e).__name__}: {e}") from e
        if len(outputs) != len(requests):
            raise TransportError(f"vLLM returned {len(outputs)} answers for {len(requests)} conversations")
        results: list[ChatResult] = []
        for out in outputs:
            completions = getattr(out, "outputs", None) or []
            if not completions:
                results.append(LLMBadReply(f"vLLM returned no completion for request {getattr(out, 'request_id', '?')}"))
            else:
                results.append(completions[0].text)
        return results

    def preflight(self) -> None:
        """Nothing to check: the engine was loaded when this transport was built."""
