"""The worker's health endpoints (/healthz, /readyz, /metrics) on its own address."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from reviewlab_common.topology import Node


def serve(node: Node, problems: Callable[[], dict[str, str]]) -> ThreadingHTTPServer:
    """Answer health checks in a daemon thread; `problems` lists what is unreachable."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Served-By", node.name)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(
                    200,
                    json.dumps({"status": "alive", "node": node.name}).encode(),
                    "application/json",
                )
            elif self.path == "/readyz":
                found = problems()
                if found:
                    body = {
                        "error": {
                            "code": "not_ready",
                            "message": "cannot reach: " + ", ".join(sorted(found)),
                            "details": found,
                        }
                    }
                    self._send(503, json.dumps(body).encode(), "application/json")
                else:
                    self._send(
                        200,
                        json.dumps({"status": "ready", "node": node.name}).encode(),
                        "application/json",
                    )
            elif self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._send(
                    404,
                    b'{"error": {"code": "not_found", "message": "no such path"}}',
                    "application/json",
                )

        def log_message(self, format: str, *args: object) -> None:
            return  # health checks would drown the worker's log

    server = ThreadingHTTPServer((node.address, node.port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
