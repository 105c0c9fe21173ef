"""The launch shim between a runner and the user's command
(``python -m clusterctl.executor.launch ARGV...``): it makes sure no process of a job outlives
its runner.

- It joins the rank's cgroup (``CLUSTERCTL_CGROUP``, when the runner could make one) before
  anything of the job exists, so every process the job ever starts is inside it.
- It is the job's child subreaper (``PR_SET_CHILD_SUBREAPER``): a process the job leaves behind
  (a double fork, a daemon) is re-parented to the shim rather than to init, so it is still a
  descendant the shim can find.
- ``PR_SET_PDEATHSIG`` sends the shim ``SIGUSR2`` when the runner dies, however it dies
  (SIGKILL of the Ray worker, a lost node's raylet): the shim then SIGKILLs every descendant
  and exits. The runner sends the same signal for the escalation after a grace period.
- When the command itself exits, what it left running is killed too: a finished job leaves
  nothing behind. The shim exits with the command's status (or dies of the same signal).

SIGTERM, SIGINT and SIGHUP reach the job's process group from the runner; the shim ignores
them (it ends when the command ends). A missing command becomes exit code 127 with a message
in the job's log, as a shell does. Deliberately imports nothing heavy: it runs once per start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
KILL_TREE = signal.SIGUSR2
"""What the runner (or its death, through PDEATHSIG) sends the shim to end the whole job."""


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux: the runner's own cleanup is all there is
        return False


def children_of(pid: int) -> list[int]:
    """Direct children, from ``/proc`` (every thread's list, as ``ps`` reads them)."""
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    return kids


def descendants(pid: int) -> list[int]:
    found, todo = [], children_of(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children_of(p))
    return found


def kill_tree(me: int, cgroup: str | None, rounds: int = 50) -> None:
    """SIGKILL every descendant until none is left (a fork racing the kill shows up in the
    next round), reaping what is re-parented to us; then the cgroup, if there is one."""
    for _ in range(rounds):
        pids = descendants(me)
        if not pids:
            break
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        _reap()
        time.sleep(0.01)
    if cgroup:
        with contextlib.suppress(OSError), open(os.path.join(cgroup, "cgroup.kill"), "w") as f:
            f.write("1")  # the shim is a member too: this is its own end


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _join(cgroup: str) -> None:
    try:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError as e:  # the subreaper still holds the job together
        print(f"clusterctl: could not join the job's cgroup {cgroup}: {e}", file=sys.stderr,
              flush=True)


def _exec(argv: list[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, KILL_TREE):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"clusterctl: command not found: {argv[0]}", file=sys.stderr, flush=True)
        os._exit(127)
    except PermissionError:
        print(f"clusterctl: permission denied: {argv[0]}", file=sys.stderr, flush=True)
        os._exit(126)
    except OSError as e:
        print(f"clusterctl: cannot run {argv[0]}: {e}", file=sys.stderr, flush=True)
        os._exit(126)


def main(argv: list[str]) -> None:
    expected_parent = int(os.environ.pop("CLUSTERCTL_RUNNER_PID", "0") or 0)
    cgroup = os.environ.pop("CLUSTERCTL_CGROUP", "") or None
    me = os.getpid()

    def end_all(_sig: int, _frame: FrameType | None) -> None:
        kill_tree(me, cgroup)
        os.kill(me, signal.SIGKILL)  # the runner sees the job killed, as before the shim

    signal.signal(KILL_TREE, end_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # meant for the job's processes, not for the shim
    _prctl(PR_SET_PDEATHSIG, KILL_TREE)
    if expected_parent and os.getppid() != expected_parent:
        os._exit(137)  # the runner died before PDEATHSIG was armed
    if not argv:
        print("clusterctl: empty command", file=sys.stderr)
        os._exit(2)
    if cgroup:
        _join(cgroup)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = os.fork()
    if child == 0:
        _exec(argv)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # pragma: no cover - the child is always ours to reap
            os._exit(1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if pid == child:
            break
    kill_tree(me, None)  # what the job left running ends with it
    if os.WIFSIGNALED(status):  # die of the same signal, so the runner reports it as such
        killed_by = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(killed_by, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {killed_by})
        os.kill(me, killed_by)
        os._exit(128 + killed_by)
    os._exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main(sys.argv[1:])
