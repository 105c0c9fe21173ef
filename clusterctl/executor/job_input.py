"""An interactive job's input, as its terminal's controls act on it (``terminal.py`` decodes
them; the runner owns the process): keys into its pseudo-terminal, or bytes into its stdin
pipe when it has none; its window size; Ctrl-C and friends to its foreground job."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from clusterctl.executor.terminal import Window, set_window


def killpg(pgid: int, sig: int) -> None:
    """Signal a job's process group. Never the caller's own: a pseudo-terminal with no
    foreground group yet (the job's shim has not taken it) or any more (its session ended)
    answers ``tcgetpgrp`` with 0, and ``killpg(0)`` is the runner's own group: a hangup there
    killed the runner, and the job ended LOST instead of CANCELLED."""
    if pgid <= 0 or pgid == os.getpgrp():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class JobInput:
    def __init__(self) -> None:
        self.master: int | None = None
        """The job's pseudo-terminal (its runner's end), with ``run --pty``."""
        self.stdin: Any = None
        """The job's stdin pipe, without a pseudo-terminal."""
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):  # the job went, or closed its stdin
            if self.master is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.master, view):]
            elif self.stdin is not None:
                self.stdin.write(data)
                self.stdin.flush()

    def close_input(self) -> None:
        if self.master is not None:  # the terminal's end of file, as Ctrl-D types it
            self.write(b"\x04")
        elif self.stdin is not None:
            with contextlib.suppress(OSError):
                self.stdin.close()

    def resize(self, window: Window) -> None:
        if self.master is not None:  # the kernel sends the foreground job SIGWINCH
            with contextlib.suppress(OSError):
                set_window(self.master, window)

    def signal(self, name: str) -> None:
        self.foreground(signal.Signals[f"SIG{name}"])

    def foreground(self, sig: int) -> None:
        """To the terminal's foreground job, as a key would send it; without a terminal, to
        the job's process group."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.master is not None:
            with contextlib.suppress(OSError):
                killpg(os.tcgetpgrp(self.master), sig)
                return
        killpg(proc.pid, sig)

    def close(self) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
