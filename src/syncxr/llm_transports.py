"""Transports of the LLM backends: they move chat messages to a model and return its text.

- OpenAIChatTransport: any OpenAI-compatible `/chat/completions` server (OpenAI, `vllm serve`,
  llama.cpp server, TGI...). Uses only the standard library (urllib), so it needs no extra.
- TransformersTransport: an in-process transformers causal LM with a chat template.
- VLLMTransport: offline `vllm.LLM` (GPU only; imported lazily, kept thin).

Prompt formatting and parsing live in the writer / judge; a transport knows only messages.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from syncxr.errors import SampleError, UserError
from syncxr.registry import Registry

log = logging.getLogger(__name__)

Message = dict[str, Any]  # {"role": ..., "content": str | list of content parts}


class LLMError(SampleError):
    """A per-sample LLM failure; `reason` is the reject code the stage records."""

    reason = "llm_error"


class TransportError(LLMError):
    """The model could not be reached or answered with an error (after retries)."""

    reason = "llm_transport_error"


@runtime_checkable
class Transport(Protocol):
    backend_id: str

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        """The assistant's answer text for a chat."""
        ...


class OpenAIChatTransport:
    """POST /chat/completions to an OpenAI-compatible server, with retries on 429 / 5xx / network errors.

    api_key_env: name of the environment variable holding the key; unset or empty -> no
    Authorization header (a local `vllm serve` needs none).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 3,
        retry_backoff_s: float = 1.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(
                f"LLM base_url {base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.extra_body = dict(extra_body or {})
        self.backend_id = f"openai:{model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON payload; the decoded JSON response. Retries transient failures."""
        data = json.dumps(payload).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                body = e.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {e.code} from {self.url}: {body}"
                if e.code != 429 and e.code < 500:  # a client error will not heal on retry
                    hint = f" (is ${self.api_key_env} set?)" if e.code in (401, 403) else ""
                    raise TransportError(last + hint) from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__} talking to {self.url}: {e}"
            log.warning("LLM request failed (try %d/%d): %s", attempt + 1, self.max_retries + 1, last)
        raise TransportError(f"gave up after {self.max_retries + 1} tries: {last}")

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if seed is not None:
            payload["seed"] = seed
        payload.update(self.extra_body)
        reply = self.request(payload)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise TransportError(f"unexpected chat completion from {self.url}: {str(reply)[:300]}") from None
        if not isinstance(content, str):
            raise TransportError(f"chat completion from {self.url} has no text content: {str(reply)[:300]}")
        return content


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
            raise UserError(
                f"the transformers LLM transport needs transformers ({e}); pip install 'syncxr[train]'"
            ) from None
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


class VLLMTransport:
    """Offline vLLM engine (GPU only). Thin: one chat call per request."""

    def __init__(self, model: str | Path, max_new_tokens: int = 512, **engine_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise UserError(
                "the vllm LLM transport needs vLLM (GPU only): pip install vllm; or run `vllm serve MODEL` "
                "and use transport: openai with base_url http://127.0.0.1:8000/v1"
            ) from None
        self.llm = LLM(model=str(model), **engine_kwargs)
        self.max_new_tokens = max_new_tokens
        self.backend_id = f"vllm:{Path(str(model)).name}"

    def complete(
        self, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None
    ) -> str:
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, max_tokens=max_tokens or self.max_new_tokens, seed=seed)
        outputs = self.llm.chat(messages, params, use_tqdm=False)
        return outputs[0].outputs[0].text


# One line per transport: name -> "module:class" (imported only when chosen).
TRANSPORTS: Registry[Transport] = Registry(
    "LLM transport",
    {
        "openai": "syncxr.llm_transports:OpenAIChatTransport",
        "transformers": "syncxr.llm_transports:TransformersTransport",
        "vllm": "syncxr.llm_transports:VLLMTransport",
    },
    requires={"transformers": ("torch", "transformers"), "vllm": ("vllm",)},
)
