"""The user's end of an interactive job (``clusterctl run``, ``attach``) and of a forwarded
port (``port-forward``): WebSockets to the controller, which relays them to the job's node.

With ``--pty`` the local terminal is put in raw mode, so every key (Ctrl-C, Ctrl-D, arrows)
goes to the job's own pseudo-terminal and the job's terminal does the echoing; the window size
follows the local one (SIGWINCH). Without it, stdin is copied as it is, and its end closes
the job's stdin. Closing the terminal (SIGHUP) hangs the job up; a dropped connection leaves
the job running for the controller's grace period, and is retried for a while.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass
from types import FrameType
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential
from websockets.exceptions import ConnectionClosed

from clusterctl.cli.client import ApiError, Client
from clusterctl.states import ENDED, JobState

RECONNECT_S = 30.0
"""How long a dropped connection is tried again before ``run`` gives up (the job keeps
running for the controller's ``attach_grace_s``)."""


@dataclass
class Ended:
    """How the session ended: the command's exit code, or the job's end as the controller
    recorded it, or neither (the connection was lost)."""

    exit_code: int | None = None
    state: str | None = None
    reason: str | None = None
    lost: str | None = None


SILENCE_S = 5.0
"""After this long without a word on the terminal's connection, the CLI asks the controller
whether the job has ended. The end is told on the connection, but one that looks live may
have lost it (seen under load, over TLS: the job had ended in 3 s, the CLI waited on), and
the CLI must not wait on it for ever."""

HANGUP_S = 60.0
"""How long a closed terminal's CLI keeps trying to tell the job, while the controller is away
(a restart on a loaded machine took over 20 s)."""


HANGUP_WAIT_S = 15.0
"""How long a closed terminal's CLI waits for the job's end once it has sent the hangup:
closed at once, its connection could be gone before the hangup reached the job. 5 s was too
short on a loaded machine: a clean-clone run's job ended "nobody attached" instead of
"terminal closed". The CLI returns as soon as the end arrives; the terminal is gone anyway."""


def _until_the_end(conn: Any, deadline: float) -> bool:
    """Read (and drop) what the job shows until it says it ended, or ``deadline``: True, done
    (the end came, or the wait is over, or the job is not ours to end). False when the hangup
    may not have reached the job: the controller answered that it cannot reach it now (502,
    503: a restart, a loaded node) or the connection closed first. Then it is sent again."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = conn.recv(timeout=left)
        except TimeoutError:
            return True
        except (ConnectionClosed, OSError):
            return False
        if not isinstance(message, str):
            continue
        if '"exit_code"' in message or '"ended"' in message:
            return True
        if '"error"' in message:
            with contextlib.suppress(ValueError, AttributeError):
                return json.loads(message).get("status") not in (502, 503)
            return False
    return True


def _retryable(e: BaseException) -> bool:
    return isinstance(e, ApiError) and (e.unreachable or e.status == 503)


class Session:
    def __init__(self, c: Client, job_id: int, pty: bool) -> None:
        self.c, self.job_id, self.pty = c, job_id, pty
        self.received = 0
        """Bytes of output shown: a reconnection asks for what follows them."""
        self.conn: Any = None
        self._send_lock = threading.Lock()
        self._pending: list[bytes | str] = []

    # -- the connection -----------------------------------------------------------------------

    def _connect(self, offset: int | None) -> Any:
        query = f"?offset={offset}" if offset is not None else ""
        conn = self.c.websocket(f"/v1/jobs/{self.job_id}/attach{query}")
        try:  # a refusal is the first message (the handshake itself always succeeds)
            first = conn.recv(timeout=0.5)
        except TimeoutError:
            return conn
        except ConnectionClosed:
            raise ApiError(f"job {self.job_id}: the controller closed the connection",
                           unreachable=True) from None
        self._on_message(first, conn)
        return conn

    def _open(self, offset: int | None, patient: bool) -> Any:
        if not patient:
            return self._connect(offset)
        retrying = Retrying(retry=retry_if_exception(_retryable),
                            stop=stop_after_delay(RECONNECT_S),
                            wait=wait_exponential(multiplier=0.5, min=0.5, max=5),
                            reraise=True)
        return retrying(self._connect, offset)

    def send(self, message: bytes | str) -> None:
        """To the job; what is typed while the connection is down waits for the next one
        (a window size is sent afresh on reconnection)."""
        with self._send_lock:
            if self.conn is not None:
                try:
                    self.conn.send(message)
                    return
                except (ConnectionClosed, OSError):
                    self.conn = None
            if isinstance(message, bytes) or '"eof"' in message:
                self._pending.append(message)

    def _hang_up(self) -> None:
        """Tell the job its user is gone, so that it ends at once ("terminal closed"): on the
        live connection, and again on one of its own (tried for up to ``HANGUP_S``), since a
        connection that looks live may be dead (a controller just killed takes the frame
        into the void) or be down while it reconnects. Dropped, the job would run on until
        the attach grace ran out. Called from the SIGHUP handler, which may interrupt this
        thread inside ``send``: the lock is only tried."""
        hangup = json.dumps({"hangup": True})
        if self._send_lock.acquire(timeout=2):
            try:
                if self.conn is not None:
                    with contextlib.suppress(ConnectionClosed, OSError):
                        self.conn.send(hangup)
            finally:
                self._send_lock.release()
        deadline = time.monotonic() + HANGUP_S
        while time.monotonic() < deadline:
            try:
                conn = self.c.websocket(f"/v1/jobs/{self.job_id}/attach?offset={self.received}")
            except ApiError as e:
                if not _retryable(e):
                    return  # refused: the job has ended, or is no longer ours to end
                time.sleep(0.5)
                continue
            done = False
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                conn.send(hangup)
                done = _until_the_end(conn, min(deadline, time.monotonic() + HANGUP_WAIT_S))
            with contextlib.suppress(Exception):
                conn.close()
            if done:
                return
            time.sleep(0.5)  # told "cannot reach the job now", or cut: tell it again

    def _reconnected(self, conn: Any) -> Any:
        with self._send_lock:
            self.conn = conn
            pending, self._pending = self._pending, []
        for message in pending:
            self.send(message)
        return conn

    def _on_message(self, message: bytes | str, conn: Any) -> None:
        if isinstance(message, bytes):
            self.received += len(message)
            _write_all(sys.stdout.fileno(), message)
            return
        value = json.loads(message)
        if "error" in value:
            status = int(value.get("status") or 0)
            conn.close()
            raise ApiError(f"job {self.job_id}: {value['error']}",
                           2 if status in (400, 422) else 1, status)
        if "ended" in value:
            raise _Done(Ended(value.get("exit_code"), value["ended"], value.get("reason")))
        if "exit_code" in value:
            raise _Done(Ended(int(value["exit_code"])))

    def _ended_meanwhile(self) -> None:
        """The job's end as the controller recorded it, if it has ended (what it printed and
        this terminal did not show is then read from its log)."""
        try:
            j = self.c.job(self.job_id)
        except ApiError:
            return  # the connection's own trouble shows there
        if JobState(j["state"]) in ENDED:
            raise _Done(Ended(state=j["state"], reason=j.get("reason")))

    # -- the session --------------------------------------------------------------------------

    def run(self, offset: int | None) -> Ended:
        """Until the job ends or the connection is lost for good."""
        try:
            conn = self._reconnected(self._open(offset, patient=True))
        except _Done as done:
            return done.ended
        saved = self._local_terminal()
        hung_up = threading.Event()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGWINCH, signal.SIGHUP)}

        def on_winch(_sig: int, _frame: FrameType | None) -> None:
            self._send_size()

        def on_hup(_sig: int, _frame: FrameType | None) -> None:
            hung_up.set()
            self._hang_up()
            raise SystemExit(129)

        signal.signal(signal.SIGWINCH, on_winch)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            self._send_size()
            threading.Thread(target=self._copy_stdin, name="stdin", daemon=True).start()
            while True:
                try:
                    while True:
                        try:
                            message = conn.recv(timeout=SILENCE_S)
                        except TimeoutError:
                            self._ended_meanwhile()
                            continue
                        self._on_message(message, conn)
                except _Done as done:
                    return done.ended
                except (ConnectionClosed, OSError):
                    pass
                if hung_up.is_set():
                    return Ended(lost="terminal closed")
                with self._send_lock:
                    self.conn = None
                try:  # dropped: come back to it, from the output already shown
                    conn = self._reconnected(self._open(self.received, patient=True))
                    self._send_size()
                except _Done as done:
                    return done.ended
                except ApiError as e:
                    if not _retryable(e):
                        raise
                    return Ended(lost=str(e))
        finally:
            if saved is not None:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            with contextlib.suppress(Exception):
                conn.close()

    def _local_terminal(self) -> list[Any] | None:
        """Raw mode, with a pseudo-terminal: the job's terminal handles every key."""
        if not self.pty or not sys.stdin.isatty():
            return None
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        return saved

    def _send_size(self) -> None:
        if not self.pty:
            return
        try:
            size = os.get_terminal_size(sys.stdin.fileno())
        except OSError:
            try:
                size = os.get_terminal_size(sys.stdout.fileno())
            except OSError:
                return
        # A terminal without a size (0x0, as under `script` or a serial console) gets 80x24,
        # as ssh gives one: the job's side refuses a window of no rows.
        self.send(json.dumps({"resize": [size.lines or 24, size.columns or 80]}))

    def _copy_stdin(self) -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self.send(json.dumps({"eof": True}))
                return
            self.send(data)


class _Done(Exception):
    def __init__(self, ended: Ended) -> None:
        super().__init__(ended)
        self.ended = ended


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- port-forward -----------------------------------------------------------------------------


def forward(c: Client, job_id: int, port: int, listener: socket.socket,
            say: Any = print) -> None:
    """Each connection to ``listener`` becomes a WebSocket to the job's port, until Ctrl-C."""
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_forward_one, args=(c, job_id, port, conn, say),
                         daemon=True).start()


def _forward_one(c: Client, job_id: int, port: int, conn: socket.socket, say: Any) -> None:
    try:
        ws = c.websocket(f"/v1/jobs/{job_id}/ports/{port}")
    except ApiError as e:
        say(f"port-forward: {e}")
        conn.close()
        return

    def up() -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            while data := conn.recv(1 << 16):
                ws.send(data)
        with contextlib.suppress(Exception):
            ws.close()

    threading.Thread(target=up, daemon=True).start()
    try:
        for message in ws:
            if isinstance(message, str):
                value = json.loads(message)
                if "error" in value:
                    say(f"port-forward: job {job_id}: {value['error']}")
                break
            conn.sendall(message)
    except (ConnectionClosed, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        with contextlib.suppress(Exception):
            ws.close()
