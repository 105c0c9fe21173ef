"""A loopback TCP forwarder that can be cut and restored: a database outage on cue, at the
network level, for a real controller talking to a real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading

from ports import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._upstreams: list[socket.socket] = []
        self._muted: set[socket.socket] = set()
        self.first_lines: list[bytes] = []
        """The first line each client sent on each connection (an HTTP request's)."""

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    @property
    def serving(self) -> bool:
        return self._listener is not None

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a database that went away."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread (close alone won't)
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def mute_newest(self) -> None:
        """From now on drop what the server sends on the connection opened last, its close
        included: the client's side stays open, an answer lost on a connection that looks
        live."""
        with self._lock:
            self._muted.add(self._upstreams[-1])

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
                self._upstreams.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            first = src not in self._upstreams
            while data := src.recv(65536):
                if first:
                    self.first_lines.append(data.split(b"\r\n", 1)[0])
                    first = False
                if src not in self._muted:
                    dst.sendall(data)
        if src in self._muted:
            return  # its end is lost too: the client's side stays open
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
