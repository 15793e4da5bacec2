"""LLM chat transports: the protocol, the errors and the table of names.

A transport moves chat messages to a model and returns its text; prompt formatting and parsing
live in the caller (the LLM report writer, the MLLM judge). Each transport is one module here,
named by one line in `TRANSPORTS` and imported only when chosen:

- `openai`: any OpenAI-compatible `/chat/completions` server (OpenAI, `vllm serve`, llama.cpp
  server, TGI...), standard library only (`openai_http.py`).
- `transformers`: an in-process transformers causal LM with a chat template (`hf_transformers.py`).
- `vllm`: the offline `vllm.LLM` engine, GPU only (`vllm_engine.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, Union, runtime_checkable

from syncxr.errors import InfrastructureError, SampleError
from syncxr.registry import Registry

Message = dict[str, Any]  # {"role": ..., "content": str | list of content parts}


class LLMError(SampleError):
    """A per-sample LLM failure; `reason` is the reject code the stage records."""

    reason = "llm_error"


class LLMRequestRejected(LLMError):
    """The server refused this one request (HTTP 400/404/413/422: e.g. a prompt too long for the
    context window). A content failure of that sample, not of the machinery."""

    reason = "llm_request_rejected"


class LLMBadReply(LLMError):
    """The server answered 200 but without a chat completion with text content."""

    reason = "llm_bad_reply"


class TransportError(InfrastructureError):
    """The model could not be reached or kept failing (after retries): the machinery failed, so
    the shard fails and a rerun redoes it."""

    reason = "llm_transport_error"


@dataclass(frozen=True)
class ChatRequest:
    """One chat to complete (the unit of `complete_batch`)."""

    messages: list[Message]
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int | None = None


# The answer text, or the per-sample LLMError of that request.
ChatResult = Union[str, Exception]


@runtime_checkable
class Transport(Protocol):
    backend_id: str

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        """The assistant's answer text for a chat."""
        ...

    def complete_batch(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One answer per request, in order; a per-sample failure (an `LLMError`) is returned in
        its place, an infrastructure failure (`TransportError`) is raised."""
        ...

    def preflight(self) -> None:
        """Check, before any work, that the model can be used at all; raises `UserError`."""
        ...


def complete_each(transport: Any, requests: Sequence[ChatRequest]) -> list[ChatResult]:
    """`complete_batch` one request at a time (for in-process transports)."""
    out: list[ChatResult] = []
    for r in requests:
        try:
            out.append(transport.complete(r.messages, r.temperature, r.max_tokens, r.seed))
        except LLMError as e:
            out.append(e)
    return out


# One line per transport: name -> "module:class" (imported only when chosen).
TRANSPORTS: Registry[Transport] = Registry(
    "LLM transport",
    {
        "openai": "syncxr.transports.openai_http:OpenAIChatTransport",
        "transformers": "syncxr.transports.hf_transformers:TransformersTransport",
        "vllm": "syncxr.transports.vllm_engine:VLLMTransport",
    },
    requires={"transformers": ("torch", "transformers"), "vllm": ("vllm",)},
)
