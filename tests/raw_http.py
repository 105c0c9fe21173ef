"""The server side of HTTP/1.1 over a bare socket, for tests that need a server misbehaving in
ways no framework lets it (an answer dropped, a kept-alive connection closed after it)."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any


def read_request(conn: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One request: its first line, its headers (names in lower case) and its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    first, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += conn.recv(65536)
    return first, headers, body


def answer_json(conn: socket.socket, status: str, value: Any, close: bool = True) -> None:
    """A JSON answer; without ``close`` the connection is offered for another request."""
    body = json.dumps(value).encode()
    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n".encode()
                 + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)


class Server:
    """A real server on a loopback port that takes its connections one at a time, each to
    :meth:`handle` (which a test's server defines) and then closed; ``close`` stops it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.handle(conn)
            self.served()

    def served(self) -> None:
        """After each connection is closed (a test may wait for it)."""
