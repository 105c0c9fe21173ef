"""A webhook receiver on a local port, for the tests of notifications."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Hook:
    """A webhook receiver: what was posted to each path."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                hook.got.append((self.path, json.loads(self.rfile.read(size))))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str, event: str | None = None, timeout: float = 60
           ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not (found := [b for p, b in self.got
                             if p == path and event in (None, b.get("event"))]):
            assert time.monotonic() < deadline, f"nothing posted to {path}: {self.got}"
            time.sleep(0.2)
        return found
