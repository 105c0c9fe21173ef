"""Exec shim between a runner and the user's command (``python -m clusterctl.executor.launch``).

It asks the kernel to SIGKILL the command if the runner dies (``PR_SET_PDEATHSIG`` survives
``execve``), which ``subprocess``'s ``preexec_fn`` cannot do safely in a threaded Ray worker.
A missing command becomes exit code 127 with a message in the job's log, as a shell does.
Deliberately imports nothing heavy: it runs once per job start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    expected_parent = int(os.environ.pop("CLUSTERCTL_RUNNER_PID", "0") or 0)
    # Not Linux: fall back to the runner's own cleanup.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if expected_parent and os.getppid() != expected_parent:
        os._exit(137)  # the runner died before prctl took effect
    if not argv:
        print("clusterctl: empty command", file=sys.stderr)
        os._exit(2)
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"clusterctl: command not found: {argv[0]}", file=sys.stderr, flush=True)
        os._exit(127)
    except PermissionError:
        print(f"clusterctl: permission denied: {argv[0]}", file=sys.stderr, flush=True)
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv[1:])
