"""A local OpenAI-compatible chat server for tests (stdlib http.server on 127.0.0.1, in a thread).

- Each queued reply is (status, body-dict) or (status, body-dict, headers-dict) (e.g. a 429 with
  Retry-After); requests are recorded as (path, headers, json), in arrival order.
- When the queue is empty, `responder(body)` answers if set, else 200 with `default` content.
- `trickle_s`: send each body one byte at a time, `trickle_s` seconds apart (a slow server).
- `delay_s`: wait this long before answering (to measure concurrency).
- GET /v1/models lists `models` (None: 404, as on servers without the endpoint).
- `cut_next`: that many next answers stop half-way and the connection closes (IncompleteRead).
- `api_key`: when set, a request without `Authorization: Bearer <api_key>` gets 401.
- `stop()` takes the server down (connections refused); `start()` brings it back on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def completion(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


class ChatStub:
    def __init__(self, default: str = "FINDINGS: ok. IMPRESSION: ok.") -> None:
        self.default = default
        self.replies: list[tuple] = []
        self.requests: list[tuple[str, dict, dict]] = []
        self.responder: Callable[[dict], tuple] | None = None
        self.trickle_s = 0.0
        self.delay_s = 0.0
        self.models: list[str] | None = ["m"]
        self.api_key: str | None = None
        self.cut_next = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _authorised(self) -> bool:
                if stub.api_key and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided"}}, {})
                    return False
                return True

            def do_GET(self):  # noqa: N802 (http.server API)
                stub.requests.append((self.path, dict(self.headers), {}))
                if not self._authorised():
                    return
                if self.path.endswith("/models") and stub.models is not None:
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]}, {})
                else:
                    self._send(404, {"error": "not found"}, {})

            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, dict(self.headers), body))
                if not self._authorised():
                    return
                with stub._lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    queued = stub.replies.pop(0) if stub.replies else None
                try:
                    if stub.delay_s:
                        time.sleep(stub.delay_s)
                    if queued is None:
                        queued = stub.responder(body) if stub.responder else (200, completion(stub.default))
                    status, reply, headers = (*queued, {}) if len(queued) == 2 else queued
                    self._send(status, reply, headers)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _send(self, status: int, reply: dict, headers: dict) -> None:
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    if stub.cut_next and self.command == "POST":
                        stub.cut_next -= 1
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    if stub.trickle_s:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(stub.trickle_s)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its deadline): fine

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # a short poll interval: shutdown() waits up to one interval (0.5 s by default) per test
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    close = stop
