"""The launch shim between a runner and the user's command
(``python -m clusterctl.executor.launch [ARGV...]``): it makes sure no process of a job outlives
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

- The command runs as the job's account (``CLUSTERCTL_ACCOUNT``, when the runner switches
  accounts): the shim's child sets the account's groups, gid and uid, sets no_new_privs and
  clears ambient capabilities, then execs. The shim itself keeps the runner's account, so the
  job can neither signal it nor read its ``/proc``; it holds no descriptor but the job's
  stdio (Python's descriptors are close-on-exec).
- The job's working directory (``CLUSTERCTL_WORKDIR``) is entered after the switch, with the
  job's rights: it is the job's own, closed to the runner's account.
- A shipped working directory (``CLUSTERCTL_UNPACK``, a zip only the runner's account can
  read) is opened before the switch and unpacked after it: the files are the job's own, and
  no entry of the archive can write where the job's account could not.

SIGTERM, SIGINT and SIGHUP reach the job's process group from the runner; the shim ignores
them (it ends when the command ends). A missing command becomes exit code 127 with a message
in the job's log, as a shell does. Deliberately imports nothing heavy: it runs once per start.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import sys
import termios
import time
import zipfile
from types import FrameType

from clusterctl.executor.accounts import Account
from clusterctl.workdir import unpack

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
KILL_TREE = signal.SIGUSR2
"""What the runner (or its death, through PDEATHSIG) sends the shim to end the whole job."""
COMMAND_ENV = "CLUSTERCTL_COMMAND_FILE"
"""Where the runner wrote the command (a JSON list, readable by the runner's account alone),
rather than on the shim's command line: the shim lives as long as the job, and its command
line shows in every user's ``ps``. Without it, the shim runs its own arguments."""
ENDED_FILE = "command.ended"
"""Made in the shim's directory (the run directory) once the command has ended and been
reaped: a cancel that arrives after it finds a job that ended on its own, and the job keeps
its outcome (the shim itself lives on a moment, ending what the command left)."""
PTY_ENV = "CLUSTERCTL_PTY"
"""Set when the job's stdio is a pseudo-terminal (``run --pty``): the shim, leader of the
job's session, makes it the session's controlling terminal, so that Ctrl-C, window sizes and
job control reach the job as in a login session."""


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


def prctl(option: int, *args: int) -> bool:
    """False where there is no prctl (not Linux): the runner's own cleanup is all there is."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        padded = (*args, 0, 0, 0, 0)[:4]
        return bool(libc.prctl(option, *padded) == 0)
    except (OSError, AttributeError):
        return False


def _cannot_start(message: str, code: int = 126) -> None:
    print(f"clusterctl: {message}", file=sys.stderr, flush=True)
    os._exit(code)


def _become(account: Account) -> None:
    """The job's account, for good: no way back to the runner's rights."""
    try:
        os.setgroups(list(account.groups))
        os.setresgid(account.gid, account.gid, account.gid)
        os.setresuid(account.uid, account.uid, account.uid)
    except OSError as e:
        _cannot_start(f"could not switch to the job's account {account.name}: {e}")
    if not prctl(PR_SET_NO_NEW_PRIVS, 1):
        _cannot_start("could not set no_new_privs for the job")
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)  # none on kernels before 4.3
    if os.getuid() != account.uid or os.geteuid() != account.uid:  # pragma: no cover
        _cannot_start(f"still not running as {account.name}")


def _unpack(archive: zipfile.ZipFile) -> None:
    try:
        with archive:
            unpack(archive, os.getcwd())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        _cannot_start(f"could not unpack the job's working directory: {e}")


def _child(argv: list[str], account: Account | None, package: str | None,
           workdir: str | None) -> None:
    archive = None
    if package:
        try:  # opened with the runner's rights: the job's account cannot read the file
            archive = zipfile.ZipFile(package)
        except (zipfile.BadZipFile, OSError) as e:
            _cannot_start(f"could not unpack the job's working directory: {e}")
    if account is not None:
        _become(account)
    # Armed after the switch of account (which clears it): a shim killed outright (SIGKILL,
    # with the runner's whole process group) takes the job's own process with it.
    shim = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != shim:
        os._exit(137)
    if workdir:  # entered with the job's own rights (0700 and the job's: not the runner's)
        try:
            os.chdir(workdir)
        except OSError as e:
            _cannot_start(f"cannot enter the working directory {workdir}: {e}")
    if archive is not None:
        _unpack(archive)
    _exec(argv)


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
    command_file = os.environ.pop(COMMAND_ENV, "")
    if command_file:
        with open(command_file, encoding="utf-8") as f:
            argv = [str(a) for a in json.load(f)]
    expected_parent = int(os.environ.pop("CLUSTERCTL_RUNNER_PID", "0") or 0)
    cgroup = os.environ.pop("CLUSTERCTL_CGROUP", "") or None
    account_text = os.environ.pop("CLUSTERCTL_ACCOUNT", "")
    account = Account.decode(account_text) if account_text else None
    package = os.environ.pop("CLUSTERCTL_UNPACK", "") or None
    workdir = os.environ.pop("CLUSTERCTL_WORKDIR", "") or None
    if os.environ.pop(PTY_ENV, ""):
        with contextlib.suppress(OSError):  # the runner started us as a session's leader
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    me = os.getpid()

    def end_all(_sig: int, _frame: FrameType | None) -> None:
        kill_tree(me, cgroup)
        os.kill(me, signal.SIGKILL)  # the runner sees the job killed, as before the shim

    signal.signal(KILL_TREE, end_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # meant for the job's processes, not for the shim
    prctl(PR_SET_PDEATHSIG, KILL_TREE)
    if expected_parent and os.getppid() != expected_parent:
        os._exit(137)  # the runner died before PDEATHSIG was armed
    if not argv:
        print("clusterctl: empty command", file=sys.stderr)
        os._exit(2)
    if cgroup:
        _join(cgroup)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = os.fork()
    if child == 0:
        _child(argv, account, package, workdir)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # pragma: no cover - the child is always ours to reap
            os._exit(1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if pid == child:
            break
    with contextlib.suppress(OSError):  # in the run directory: a cancel from now on is late
        os.close(os.open(ENDED_FILE, os.O_WRONLY | os.O_CREAT, 0o600))
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
