"""A stand-in model for the service tests: a stdlib HTTP server on $PORT.

- ``GET /healthz``: 200 (ready at once).
- ``POST /v1/echo``: JSON with this replica's job id, what was sent, and an OpenAI-style
  ``usage`` block (``total_tokens`` = the body's length).
- ``GET /stream?gate=PATH``: a server-sent event, then waits until the file PATH exists before
  the second (10 s at most, then ``no gate``): a caller sees the first only if it was passed
  on before the answer ended.
- ``GET /pid``: this process's id (a test kills it).
- ``GET /fail``: a 500, as a model that fails a request answers.
"""

from __future__ import annotations

import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()  # headers and body go out in two writes: no wait for a delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, value: object, status: int = 200) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._json({"ok": True})
        elif url.path == "/fail":
            self._json({"error": "the model fell over"}, 500)
        elif url.path == "/pid":
            self._json({"pid": os.getpid(), "job": os.environ.get("CLUSTERCTL_JOB_ID")})
        elif url.path == "/stream":
            gate = parse_qs(url.query)["gate"][0]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b"data: first\n\n")
            deadline = time.monotonic() + 10
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.02)
            self._chunk(b"data: second\n\n" if os.path.exists(gate) else b"data: no gate\n\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._json({"error": "not found"}, 404)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json({"job": os.environ.get("CLUSTERCTL_JOB_ID"), "got": body.decode(),
                    "usage": {"prompt_tokens": len(body), "completion_tokens": 0,
                              "total_tokens": len(body)}})


server = ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
print(f"listening on port {os.environ['PORT']}", flush=True)
server.serve_forever()
