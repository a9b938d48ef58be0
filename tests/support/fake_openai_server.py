"""A real OpenAI-compatible HTTP server on 127.0.0.1 that can inject faults.

Each request pops the next fault from `faults` (or answers normally when the list is empty):
"429" (with Retry-After), "500", "slow" (sleeps past the client timeout), "malformed" (invalid JSON),
"401". Normal answers echo the last user message upper-cased, with usage counted in words; an
`answer` function may return a whole assistant message (a dict, e.g. with tool_calls) instead."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-request (the chaos benchmark's kill -9) resets its connection: not an error here."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    def __init__(self, answer=None, slow_seconds: float = 2.0):
        self.faults: list[str] = []
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.answer = answer or (lambda body: body["messages"][-1]["content"].upper())
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if fault == "429":
                    return self._send(429, b'{"error": "rate"}', {"Retry-After": "0.05"})
                if fault == "500":
                    return self._send(500, b'{"error": "boom"}')
                if fault == "401":
                    return self._send(401, b'{"error": "bad key"}')
                if fault == "malformed":
                    return self._send(200, b'{"choices": [ this is not json')
                reply = server.answer(body)
                message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
                text = message.get("content") or ""
                payload = {
                    "choices": [{"message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": sum(len(str(m["content"]).split()) for m in body["messages"]),
                              "completion_tokens": len(text.split())},
                }
                self._send(200, json.dumps(payload).encode())

            def _send(self, code, data, headers=None):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
