"""A tiny threaded HTTP server on 127.0.0.1 (ephemeral port) that vendor stubs build on.

A stub registers handlers per (method, path); each gets a :class:`Req` and returns
``(status, body)`` or ``(status, body, headers)``; dict/list bodies are sent as JSON.
``fail_next`` queues failure answers for the next requests: an int is an HTTP
status with an empty body; ``("sleep", seconds)`` stalls longer than the client's
timeout; ``("status", code, body)`` sends that status and body; ``("truncated", code,
body)`` announces a longer body than it sends, then closes the connection. ``fail_at(path, n, failure)``
answers the ``n``-th next request to ``path`` (1 = the next one) with ``failure``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)


def _default(o: object) -> object:
    if isinstance(o, Decimal):
        return float(o)  # the vendors' wire format is a JSON number (stub side only)
    raise TypeError(type(o))


@dataclass
class StubServer:
    routes: dict[tuple[str, str], Callable[[Req], tuple]] = field(default_factory=dict)
    requests: list[Req] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    path_failures: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Req(self.command, parts.path,
                          {k: v[0] for k, v in parse_qs(parts.query).items()},
                          {k.lower(): v for k, v in self.headers.items()},
                          self.rfile.read(length) if length else b"")
                stub.requests.append(req)
                queued = stub.path_failures.get(parts.path)
                fail = queued.pop(0) if queued else None
                if fail is None and stub.failures:
                    fail = stub.failures.pop(0)
                if fail is not None:
                    if isinstance(fail, int):
                        return self._send(fail, b"", {})
                    if fail[0] == "sleep":
                        time.sleep(fail[1])
                        return self._send(500, b"too late", {})
                    if fail[0] == "truncated":
                        return self._send(fail[1], fail[2], {"X-Cut": "50"})
                    return self._send(fail[1], fail[2], {})
                handler = stub.routes.get((self.command, parts.path)) or stub.match(req)
                if handler is None:
                    return self._send(404, {"error": f"no route {self.command} {parts.path}"}, {})
                out = handler(req)
                self._send(out[0], out[1], out[2] if len(out) > 2 else {})

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                if isinstance(body, dict | list):
                    body = json.dumps(body, default=_default, ensure_ascii=False).encode()
                    headers = {"Content-Type": "application/json; charset=utf-8", **headers}
                elif isinstance(body, str):
                    body = body.encode()
                try:
                    self.send_response(status)
                    cut = int(headers.pop("X-Cut", 0))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body) + cut))
                    if cut:
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def match(self, req: Req) -> Callable[[Req], tuple] | None:
        """Prefix routes: a key path ending in ``/*`` matches anything under it."""
        for (method, path), fn in self.routes.items():
            if method == req.method and path.endswith("/*") and req.path.startswith(path[:-1]):
                return fn
        return None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, *failures: Any) -> None:
        self.failures.extend(failures)

    def fail_at(self, path: str, n: int, failure: Any) -> None:
        self.path_failures[path] = [None] * (n - 1) + [failure]

    def calls(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]
