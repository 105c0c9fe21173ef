"""Ports for the servers the tests start. Each pytest-xdist worker draws from a range of its own,
in turn, so that no two workers, and no two tests of one worker, get the same port while a
server of theirs is down for a moment (a controller restarted by a chaos test, a proxy): with
the kernel's ephemeral ports, the port a stopped controller gives up can be handed to another
worker's server at once — one clean-clone run's `GET /v1/jobs` was answered by another
controller's Prometheus listener.

The ranges lie between Ray's worker ports (10002 to 19999 by default) and the kernel's ephemeral
ports (32768 and up), which Ray's own processes and every `bind(0)` draw from."""

from __future__ import annotations

import itertools
import os
import socket

FIRST, LAST = 20000, 32767


def _range() -> range:
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(name) if name.isdigit() else 0
    span = (LAST - FIRST + 1) // workers
    return range(FIRST + index * span, FIRST + (index + 1) * span)


_RANGE = _range()
# Where this process starts in its range: another pytest run beside this one (a developer's)
# starts elsewhere.
_TURN = itertools.count(os.getpid() % len(_RANGE))


def _bindable(port: int) -> bool:
    for host in ("127.0.0.1", ""):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """The next port of this worker's range that nothing listens on."""
    for _ in range(len(_RANGE)):
        port = _RANGE[next(_TURN) % len(_RANGE)]
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_RANGE.start}-{_RANGE.stop - 1}")
