"""A real HTTP server on 127.0.0.1 port 0 speaking Konnektive's order-query shapes.

Tests hand it a `respond(params) -> Reply` function and read `requests` afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMPTY = {"result": "ERROR", "message": "No orders matching those parameters could be found"}


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    raw: bytes | None = None  # sent as is (malformed JSON)
    delay: float = 0.0  # seconds before answering (timeouts)


def success(orders: list[dict[str, Any]]) -> Reply:
    return Reply({"result": "SUCCESS", "message": {"totalResults": len(orders), "data": orders}})


class KonnektiveServer:
    def __init__(self, respond: Callable[[dict[str, str]], Reply]) -> None:
        self.respond = respond
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                server.requests.append(params)
                server.paths.append(url.path)
                reply = server.respond(params)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> KonnektiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
