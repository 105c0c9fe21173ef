"""An interactive job's terminal, on its runner's node: the other end of ``clusterctl run``.

The runner of an interactive job's rank 0 listens on a TCP port of its node, and the
controller connects there to relay a user's WebSocket (``GET /v1/jobs/{id}/attach``): the
bytes never pass through Ray (whose calls are for control, and go one at a time through the
controller's driver process), and the controller's API stays the only door people use, with
its tokens and ownership rules. A connection proves itself with the key the runner made at
start, which only the controller learns (in ``Started.terminal``).

The runner keeps the terminal, not the controller: a controller restart, or a dropped
connection, leaves the job running for the grace period, during which ``clusterctl attach``
comes back to it; once the grace period passes with nobody attached, the job is hung up.

Frames, both ways: one byte of kind, four bytes of length (network order), the payload.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import logging
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!cI")
MAX_FRAME = 1 << 20

# From the controller (for the user).
HELLO = b"H"
"""The first frame: ``{"key": ..., "offset": N}``; offset None: the output's last bytes."""
INPUT = b"I"
RESIZE = b"W"
"""``{"rows": R, "cols": C}``: the user's window size (a pty job gets SIGWINCH)."""
EOF = b"E"
"""The user's input ended (a job without a pty sees its stdin close)."""
SIGNAL = b"S"
"""A signal's name (``INT``, ``TERM``, ``QUIT``, ``HUP``) for the job's processes."""
HANGUP = b"X"
"""The user closed the terminal: the job is ended now, not after the grace period."""
# From the runner.
OUTPUT = b"O"
EXIT = b"Q"
"""``{"exit_code": N}``, after the last output: the command has ended."""
ERROR = b"!"

MAX_HELLO = 1024
"""The first frame's largest size: the key is checked before anything bigger is read."""
HELLO_DEADLINE_S = 5.0
"""How long a connection has to send its whole hello (a drip of bytes does not extend it)."""
MAX_CONNECTIONS = 8
"""Connections a terminal serves at once, proven or not: a flood of strangers is closed at
the door, not given a thread and a buffer each."""

SIGNALS = ("INT", "TERM", "QUIT", "HUP")
REPLAY_BYTES = 16 << 10
"""What an attach without an offset is shown of the output so far (the screen's worth)."""



def set_window(fd: int, window: Window) -> None:
    """The size of the pseudo-terminal ``fd``: the kernel tells its foreground job."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", window.rows, window.cols, 0, 0))

class FrameError(ValueError):
    """A frame that is not one: the connection is closed."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Frames out of a byte stream, as the bytes arrive."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes (at most {MAX_FRAME})")
            end = _HEADER.size + size
            if len(self._buf) < end:
                break
            frames.append((kind, bytes(self._buf[_HEADER.size:end])))
            del self._buf[:end]
        return frames


@dataclass(frozen=True)
class Window:
    rows: int
    cols: int

    @classmethod
    def parse(cls, payload: bytes) -> Window:
        try:
            value = json.loads(payload)
            rows, cols = int(value["rows"]), int(value["cols"])
        except (ValueError, KeyError, TypeError):
            raise FrameError("a window size is {\"rows\": R, \"cols\": C}") from None
        if not (1 <= rows <= 10_000 and 1 <= cols <= 10_000):
            raise FrameError("a window size is 1 to 10000 rows and columns")
        return cls(rows, cols)


@dataclass
class Controls:
    """The runner's side: what the terminal does to the job."""

    write: Callable[[bytes], None]
    resize: Callable[[Window], None]
    close_input: Callable[[], None]
    signal: Callable[[str], None]
    hangup: Callable[[str], None]


class Terminal:
    """Listens for the controller on a port of this node; one user attached at a time (a new
    attach takes over, as ``screen -d -r`` does)."""

    def __init__(self, log_path: Path, controls: Controls, key: str, grace_s: float,
                 host: str = "") -> None:
        """``host``: the address to listen on, the node's address on the cluster network
        (where the controller connects); all of the node's addresses when empty."""
        self.log_path = log_path
        self.controls = controls
        self.key = key
        self.grace_s = grace_s
        self.lock = threading.Lock()
        """Held while output is written to the log and sent, and while a new attach is given
        the output so far: nothing is shown twice or missed."""
        self._client: socket.socket | None = None
        self._generation = 0
        self._exit: int | None = None
        self._closed = False
        self._hung_up = False
        """The user closed their terminal: the job ends for that, and no grace runs out."""
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._listener = socket.create_server((host, 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="terminal", daemon=True).start()
        self._arm_grace()  # nobody attached yet: the user of `run` may have gone already

    # -- the runner's calls -------------------------------------------------------------------

    def output(self, chunk: bytes, write_log: Callable[[bytes], Any]) -> None:
        with self.lock:
            write_log(chunk)
            self._send(OUTPUT, chunk)

    def exited(self, exit_code: int) -> None:
        with self.lock:
            self._exit = exit_code
            self._send(EXIT, json.dumps({"exit_code": exit_code}).encode())
            self._drop_client()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self.lock:
            self._drop_client()

    # -- connections --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="terminal-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._serve_one(conn)
        finally:
            self._slots.release()

    def _serve_one(self, conn: socket.socket) -> None:
        reader = FrameReader()
        generation = None
        try:
            first = self._first_frame(conn, reader)
            if first is None:
                return
            hello, rest = first
            conn.settimeout(None)
            # A user whose connection stalls must not stall the job's output for long.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 30, 0))
            generation = self._attach(conn, hello)
            if generation is None:
                return
            for kind, payload in rest:  # what came in the same read as the hello
                if self._handle(kind, payload):
                    return
            while chunk := conn.recv(1 << 16):
                for kind, payload in reader.feed(chunk):
                    if self._handle(kind, payload):
                        return
        except (OSError, FrameError) as e:
            log.info("terminal connection ended: %s", e)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            if generation is not None:
                self._detached(generation)

    def _first_frame(self, conn: socket.socket, reader: FrameReader
                     ) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """The hello, and the frames that came with it; None for a stranger (told so). It
        must come whole within ``HELLO_DEADLINE_S``, in at most ``MAX_HELLO`` bytes: its
        header is checked as soon as it arrives, before anything more is read."""
        buf = bytearray()
        deadline = time.monotonic() + HELLO_DEADLINE_S
        while True:
            if len(buf) >= _HEADER.size:
                kind, size = _HEADER.unpack_from(buf)
                if kind != HELLO or size > MAX_HELLO:
                    return self._stranger(conn)
                if len(buf) >= _HEADER.size + size:
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            conn.settimeout(left)
            chunk = conn.recv(4096)
            if not chunk:
                return None
            buf += chunk
        end = _HEADER.size + size
        try:
            hello = json.loads(bytes(buf[_HEADER.size:end]))
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or not hmac.compare_digest(
                str(hello.get("key", "")).encode(), self.key.encode()):
            return self._stranger(conn)
        return hello, reader.feed(bytes(buf[end:]))

    @staticmethod
    def _stranger(conn: socket.socket) -> None:
        conn.sendall(frame(ERROR, b"not this job's terminal"))
        return None

    def _attach(self, conn: socket.socket, hello: dict[str, Any]) -> int | None:
        offset = hello.get("offset")
        with self.lock:
            size = self.log_path.stat().st_size
            start = (max(0, size - REPLAY_BYTES) if not isinstance(offset, int)
                     else min(max(0, offset), size))
            with open(self.log_path, "rb") as f:
                f.seek(start)
                backlog = f.read(size - start)
            if self._client is not None:
                with contextlib.suppress(OSError):
                    self._client.sendall(frame(ERROR, b"attached from elsewhere"))
                self._drop_client()
            self._client = conn
            self._generation += 1
            for i in range(0, len(backlog), MAX_FRAME):
                self._send(OUTPUT, backlog[i:i + MAX_FRAME])
            if self._exit is not None:
                self._send(EXIT, json.dumps({"exit_code": self._exit}).encode())
                self._drop_client()
                return None
            return self._generation

    def _handle(self, kind: bytes, payload: bytes) -> bool:
        """Act on one frame from the user; True when the connection is done."""
        c = self.controls
        if kind == INPUT:
            c.write(payload)
        elif kind == RESIZE:
            c.resize(Window.parse(payload))
        elif kind == EOF:
            c.close_input()
        elif kind == SIGNAL:
            name = payload.decode(errors="replace")
            if name not in SIGNALS:
                raise FrameError(f"signal {name!r} is not one of {', '.join(SIGNALS)}")
            c.signal(name)
        elif kind == HANGUP:
            self._hung_up = True
            c.hangup("terminal closed")
            return True
        else:
            raise FrameError(f"unknown frame {kind!r}")
        return False

    def _detached(self, generation: int) -> None:
        with self.lock:
            if generation != self._generation:
                return  # another attach took over
            self._drop_client()
        self._arm_grace()

    def _arm_grace(self) -> None:
        generation = self._generation
        timer = threading.Timer(self.grace_s, self._grace_over, args=(generation,))
        timer.daemon = True
        timer.start()

    def _grace_over(self, generation: int) -> None:
        with self.lock:
            if generation != self._generation or self._client is not None:
                return
            if self._exit is not None or self._closed or self._hung_up:
                return
        minutes = self.grace_s / 60
        shown = f"{minutes:g}m" if minutes >= 1 else f"{self.grace_s:g}s"
        self.controls.hangup(f"connection lost: nobody attached for {shown}")

    def _send(self, kind: bytes, payload: bytes) -> None:
        """To the attached user, if any (the lock held). A user who went away gets no more
        output, but what they sent before leaving is still read, until their connection
        ends: a closed terminal's hangup comes just before its connection closes, and the
        output sent to it then fails."""
        if self._client is None:
            return
        try:
            self._client.sendall(frame(kind, payload))
        except OSError:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_WR)
            self._client = None  # closed by its reader, which ends it as detached

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None


def from_user(text: str) -> bytes:
    """A user's control message (a WebSocket text message) as a frame for the runner:
    ``{"resize": [rows, cols]}``, ``{"eof": true}``, ``{"signal": "INT"}``, ``{"hangup": true}``.
    Anything else raises :class:`FrameError` naming what is allowed."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or len(value) != 1:
        raise FrameError("a control message is one of {\"resize\": [ROWS, COLS]}, "
                         "{\"eof\": true}, {\"signal\": \"INT\"}, {\"hangup\": true}")
    (name, arg), = value.items()
    if name == "resize" and isinstance(arg, list) and len(arg) == 2:
        payload = json.dumps({"rows": arg[0], "cols": arg[1]}).encode()
        Window.parse(payload)
        return frame(RESIZE, payload)
    if name == "eof" and arg is True:
        return frame(EOF)
    if name == "hangup" and arg is True:
        return frame(HANGUP)
    if name == "signal" and arg in SIGNALS:
        return frame(SIGNAL, str(arg).encode())
    raise FrameError(f"unknown control message {text[:60]!r} (resize, eof, signal: "
                     f"{', '.join(SIGNALS)}, hangup)")


def input_frames(data: bytes) -> list[bytes]:
    """A user's input as frames no larger than a runner accepts."""
    return [frame(INPUT, data[i:i + MAX_FRAME]) for i in range(0, len(data), MAX_FRAME)]
