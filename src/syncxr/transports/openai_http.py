"""The `openai` transport: POST /chat/completions to any OpenAI-compatible server.

Standard library only (http.client), so it needs no extra: OpenAI, `vllm serve`, llama.cpp
server, TGI... A whole-request deadline, retries with backoff or the server's Retry-After, and a
pre-flight check of the server, the key and the model before any work.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from syncxr.errors import UserError
from syncxr.transports.base import (
    ChatRequest,
    ChatResult,
    LLMBadReply,
    LLMError,
    LLMRequestRejected,
    Message,
    TransportError,
    complete_each,
)

log = logging.getLogger(__name__)


# Statuses worth retrying: timeouts, rate limits, overload and server errors.
_RETRY_STATUS = {408, 409, 425, 429}
# Statuses that are this request's fault (a content failure of the sample).
_REJECT_STATUS = {400, 404, 413, 422}
_NETWORK_ERRORS = (OSError, http.client.HTTPException, json.JSONDecodeError, UnicodeDecodeError)


class _Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")[:300]


class OpenAIChatTransport:
    """POST /chat/completions to an OpenAI-compatible server.

    timeout: a whole-request deadline in seconds (connect, send, wait and read together: a
    server that trickles its answer cannot hold a request longer). Retries (max_retries more
    tries) on 408/409/425/429/5xx, connection errors, resets, truncated or non-JSON bodies,
    and deadline overruns, waiting `retry_backoff_s * 2**k`, or the server's Retry-After (capped
    at max_retry_after_s) when it sends one. After the last try: `TransportError`, an
    `InfrastructureError` (the shard fails and is redone on rerun). 401/403 raise TransportError
    at once; 400/404/413/422 are this request's fault: `LLMRequestRejected` (a per-sample reject).

    concurrency: requests in flight at once in `complete_batch` (a thread pool); results come
    back in request order and each request keeps its own seed, so the answers do not depend on it.
    api_key_env: name of the environment variable holding the key; unset or empty -> no
    Authorization header (a local `vllm serve` needs none). No proxy support (http.client).
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
        concurrency: int = 8,
        max_retry_after_s: float = 120.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(
                f"LLM base_url {base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        if concurrency < 1:
            raise UserError(f"LLM option concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise UserError(f"LLM option timeout must be a positive number of seconds, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._parts = parts
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.extra_body = dict(extra_body or {})
        self.concurrency = concurrency
        self.max_retry_after_s = max_retry_after_s
        self.backend_id = f"openai:{model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # --- one HTTP exchange under a deadline --------------------------------------------------

    def _exchange(self, method: str, path: str, data: bytes | None, deadline_s: float) -> _Reply:
        """One request; raises socket.timeout when `deadline_s` passes, OSError / HTTPException
        on network trouble. A watchdog shuts the socket at the deadline, so no read outlives it."""
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._parts.hostname, self._parts.port, timeout=deadline_s)
        fired = threading.Event()

        def abort() -> None:
            fired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(deadline_s, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request(method, path, body=data, headers=self._headers())
            resp = conn.getresponse()
            body = resp.read()
            reply = _Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        except _NETWORK_ERRORS as e:
            if fired.is_set():
                raise socket.timeout(f"no complete answer within the {deadline_s:g} s timeout") from None
            raise e
        finally:
            watchdog.cancel()
            conn.close()
        if fired.is_set():
            raise socket.timeout(f"no complete answer within the {deadline_s:g} s timeout")
        return reply

    def _path(self, suffix: str) -> str:
        return (self._parts.path.rstrip("/") or "") + suffix

    def _retry_wait(self, reply: _Reply | None, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1`: the server's Retry-After, else backoff."""
        backoff = self.retry_backoff_s * 2**attempt
        header = reply.headers.get("retry-after") if reply is not None else None
        if not header:
            return backoff
        try:
            wait = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                wait = when.timestamp() - time.time()
            except (TypeError, ValueError):
                return backoff
        return min(max(wait, 0.0), self.max_retry_after_s)

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON payload to /chat/completions; the decoded JSON answer. Retries transient
        failures; raises TransportError (infrastructure) or LLMRequestRejected (this request)."""
        data = json.dumps(payload).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            reply: _Reply | None = None
            try:
                reply = self._exchange("POST", self._path("/chat/completions"), data, self.timeout)
                if reply.status == 200:
                    return json.loads(reply.body.decode("utf-8"))
                last = f"HTTP {reply.status} from {self.url}: {reply.text()}"
                if reply.status in (401, 403):
                    raise TransportError(f"{last} (is ${self.api_key_env} set to a valid key?)")
                if reply.status in _REJECT_STATUS:
                    raise LLMRequestRejected(last)
                if reply.status not in _RETRY_STATUS and reply.status < 500:
                    raise TransportError(last)
            except _NETWORK_ERRORS as e:
                last = f"{type(e).__name__} talking to {self.url}: {e}"
            if attempt == self.max_retries:
                break
            wait = self._retry_wait(reply, attempt)
            log.warning("LLM request failed (try %d/%d, next in %.1f s): %s", attempt + 1, self.max_retries + 1, wait, last)
            time.sleep(wait)
        raise TransportError(f"gave up after {self.max_retries + 1} tries: {last}")

    # --- chat ----------------------------------------------------------------------------------

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
            raise LLMBadReply(f"unexpected chat completion from {self.url}: {str(reply)[:300]}") from None
        if not isinstance(content, str):
            raise LLMBadReply(f"chat completion from {self.url} has no text content: {str(reply)[:300]}")
        return content

    def complete_batch(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """`complete` of each request, `concurrency` at a time; answers in request order.
        The first TransportError is raised once the requests in flight have ended."""
        if self.concurrency == 1 or len(requests) <= 1:
            return complete_each(self, requests)
        results: list[ChatResult | None] = [None] * len(requests)
        failure: list[TransportError] = []

        def one(i: int) -> None:
            if failure:  # the server is gone: do not queue more load on it
                return
            r = requests[i]
            try:
                results[i] = self.complete(r.messages, r.temperature, r.max_tokens, r.seed)
            except LLMError as e:
                results[i] = e
            except TransportError as e:
                failure.append(e)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)), thread_name_prefix="llm") as pool:
            list(pool.map(one, range(len(requests))))
        if failure:
            raise failure[0]
        return results  # type: ignore[return-value]  (every slot is filled when nothing failed)

    # --- pre-flight ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Before any work: the server answers, the key is accepted and the model is served.
        GET /models (a server without it gets a 1-token chat instead). Raises UserError."""
        deadline = min(self.timeout, 30.0)
        where = f"the LLM server at {self.base_url}"
        try:
            reply = self._exchange("GET", self._path("/models"), None, deadline)
        except _NETWORK_ERRORS as e:
            raise UserError(
                f"cannot reach {where} ({type(e).__name__}: {e}); start it (e.g. `vllm serve MODEL`) or fix "
                "write.options.base_url"
            ) from None
        if reply.status in (401, 403):
            key = f"${self.api_key_env}" if self.api_key_env else "an API key (write.options.api_key_env)"
            raise UserError(f"{where} refused the credentials (HTTP {reply.status}: {reply.text()}); set {key} to a valid key")
        if reply.status == 200:
            self._check_model_listed(reply)
            return
        try:
            self.complete([{"role": "user", "content": "ping"}], temperature=0.0, max_tokens=1)
        except (TransportError, LLMError) as e:
            raise UserError(f"{where} does not serve model {self.model!r}: {e}; fix write.options.model") from None

    def _check_model_listed(self, reply: _Reply) -> None:
        try:
            listed = [str(m["id"]) for m in json.loads(reply.body.decode("utf-8"))["data"]]
        except (ValueError, KeyError, TypeError):
            return  # an unusual /models answer: the first real request will tell
        if listed and self.model not in listed:
            raise UserError(
                f"the LLM server at {self.base_url} does not serve model {self.model!r}; it serves: "
                f"{', '.join(listed[:20])}. Fix write.options.model"
            )
