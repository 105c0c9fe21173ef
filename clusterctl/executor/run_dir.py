"""A rank's run directory on its node: the log the runner writes, the job's working directory
(shipped, named or empty), its own ``TMPDIR``, and the record of the runner that made it, so
that what a lost runner left behind can be told from a live one's and removed.

Layout: ``ROOT/NAMESPACE/job-ID-aATTEMPT-rRANK/`` with ``output.log``, ``runner``, ``work/``,
``tmp/`` and, for a shipped directory, ``package.zip`` (unpacked by the launch shim as the job's
account)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from clusterctl.executor import accounts, cgroups
from clusterctl.executor.accounts import Account

SYSTEM_RUN_ROOT = Path("/var/spool/clusterctl")
"""Where a runner that switches accounts keeps run directories (as slurmd keeps its own in
``/var/spool/slurmd``): a job's account must be able to pass through to its working
directory, which it cannot under root's or the service account's home."""

RUNNER_FILE = "runner"
"""In each run directory: the runner's process (pid and start time), to tell a live runner's
directory from one whose runner is gone."""


class RunDirError(RuntimeError):
    """A working directory the job cannot have (missing on the node, not passable)."""


def default_run_root() -> Path:
    if accounts.can_switch():
        return SYSTEM_RUN_ROOT
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clusterctl" / "runs"


def process_identity(pid: int) -> str | None:
    """``PID STARTTIME`` from ``/proc``: a pid reused by a later process does not match."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"  # field 22, counted from after comm


def runner_gone(run_dir: Path) -> bool:
    """The runner that made ``run_dir`` is no longer running (a directory without the record,
    from before it existed, counts as live: it is left alone)."""
    try:
        recorded = (run_dir / RUNNER_FILE).read_text().strip()
    except OSError:
        return False
    pid = recorded.split(" ", 1)[0]
    return pid.isdigit() and process_identity(int(pid)) != recorded


def _make_dirs(path: Path, mode: int) -> None:
    """``mkdir -p`` with ``mode`` for each directory it makes, whatever the umask."""
    for d in reversed([path, *path.parents]):
        if not d.exists():
            d.mkdir(mode=mode, exist_ok=True)
            d.chmod(mode)


class RunDir:
    def __init__(self, root: Path, namespace: str, job_id: int, attempt: int, rank: int
                 ) -> None:
        self.root, self.job_id, self.attempt = root, job_id, attempt
        self.path = root / namespace / f"job-{job_id}-a{attempt}-r{rank}"
        _make_dirs(self.path, 0o711 if accounts.can_switch() else 0o700)
        self.log = self.path / "output.log"
        """Written by the runner from the job's output pipe, never by the job: a job cannot
        rewrite its own log, nor anyone else's."""
        os.close(os.open(self.log, os.O_WRONLY | os.O_CREAT, 0o600))
        (self.path / RUNNER_FILE).write_text(process_identity(os.getpid()) or "")
        self.package: Path | None = None
        """The shipped directory's archive, for the launch shim to unpack."""

    def working_directory(self, workdir: str | None, package: bytes | None,
                          account: Account | None) -> str:
        """The job's working directory: its own shipped directory (unpacked by the launch
        shim, as the job's account), the directory it named on the node, or an empty one of
        its own. Where the job runs as another account, the run directory is passable but not
        readable (0711) and only ``work`` is the job's."""
        if account is not None:
            self._passable()
        if workdir and package is None:
            if not os.path.isdir(workdir):
                raise RunDirError(f"working directory {workdir} does not exist on this node")
            return str(workdir)
        work = self._own("work", account)
        if package is not None:
            archive = self.path / "package.zip"
            fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(package)
            self.package = archive
        return work

    def job_tmp(self, account: Account | None) -> str:
        """A temporary directory of the job's own (``TMPDIR``), removed with its run directory:
        not the node's shared ``/tmp``, where Ray keeps its sockets."""
        return self._own("tmp", account)

    def _own(self, name: str, account: Account | None) -> str:
        d = self.path / name
        d.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            os.chown(d, account.uid, account.gid)
        return str(d)

    def _passable(self) -> None:
        """From the run root down to this rank's directory, a job's account may pass (not
        list); above the root, it must already be able to."""
        for d in (self.root, self.path.parent, self.path):
            d.chmod(0o711)
        for above in self.root.parents:
            if above.stat().st_mode & 0o001 == 0:
                raise RunDirError(f"{above} is not passable by other accounts, so a job's "
                                  f"account cannot reach its working directory under "
                                  f"{self.root}")

    def remove_earlier(self) -> None:
        """What runners lost before they could clean up left here: this job's earlier
        attempts, and any job's whose runner is gone (lost with the Ray head, or with a node
        that came back): nobody can read those logs any more, and the job may never run on
        this node again."""
        for old in cgroups.earlier_attempts(self.path.parent, self.job_id, self.attempt):
            shutil.rmtree(old, ignore_errors=True)
        for other in cgroups.attempt_dirs(self.path.parent):
            if other != self.path and runner_gone(other):
                shutil.rmtree(other, ignore_errors=True)

    def write_command(self, argv: list[str]) -> str:
        """The command, for the shim to read (0600): not on its command line, where ``ps``
        would show it to every user of the node."""
        path = self.path / "command.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(argv, f)
        return str(path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
