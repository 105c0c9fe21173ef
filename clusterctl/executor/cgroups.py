"""One cgroup (v2) per job rank, so that every process of a job ends with it, whatever it did:
``cgroup.kill`` kills all of a cgroup's processes at once, forks in flight included, and no
process can leave the cgroup on its own (a double fork or ``setsid`` stays inside).

The jobs' cgroups sit under ``clusterctl-jobs/<installation>`` below the runner's own cgroup,
on the cgroup v2 hierarchy (``/sys/fs/cgroup`` on current Debian/Ubuntu,
``/sys/fs/cgroup/unified`` on hybrid hosts). No controller is enabled: only the kill and the
membership are used, so the parent's processes may stay where they are. Where the hierarchy
is missing or not writable (``up`` as an ordinary user), :func:`job_root` is None and the
launch shim's subreaper does the same work from ``/proc`` (see ``launch.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

ROOT_NAME = "clusterctl-jobs"
_NAME = re.compile(r"^job-(\d+)-a(\d+)-r(\d+)$")


def v2_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, or None."""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split(" ")[4])
    return None


def own_cgroup(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """This process's cgroup v2 path (``0::/path``), or None."""
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def job_root(installation: str | None = None, mount: Path | None = None,
             own: str | None = None) -> Path | None:
    """The directory the jobs' cgroups go in (one per installation, named by its Ray
    namespace: job ids of two installations sharing a node must not meet), created if need
    be; None where there is no writable cgroup v2 hierarchy."""
    mount = mount if mount is not None else v2_mount()
    own = own if own is not None else own_cgroup()
    if mount is None or own is None:
        return None
    root = mount / own.lstrip("/") / ROOT_NAME
    if installation:
        root = root / installation
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root if (root / "cgroup.procs").exists() and os.access(root, os.W_OK) else None


def name(job_id: int, attempt: int, rank: int) -> str:
    return f"job-{job_id}-a{attempt}-r{rank}"


def create(root: Path, job_id: int, attempt: int, rank: int) -> Path | None:
    path = root / name(job_id, attempt, rank)
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    return path


def populated(path: Path) -> bool:
    try:
        for line in (path / "cgroup.events").read_text().splitlines():
            if line.startswith("populated "):
                return line.split()[1] == "1"
    except OSError:
        return False
    return False


def kill(path: Path, timeout_s: float = 10.0) -> bool:
    """SIGKILL every process in the cgroup and wait until it is empty, then remove it. True
    once nothing of it is left (or it was already gone)."""
    if not path.exists():
        return True
    killer = path / "cgroup.kill"
    deadline = time.monotonic() + timeout_s
    while populated(path):
        if killer.exists():
            with contextlib.suppress(OSError):
                killer.write_text("1")
        else:  # a kernel before 5.14: kill the members one by one
            _kill_members(path)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        path.rmdir()
    return True


def _kill_members(path: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), 9)


SHIM_MODULE = "clusterctl.executor.launch"


def orphans(root: Path) -> list[Path]:
    """Job cgroups whose launch shim is gone while processes of the job live on (the shim was
    killed with the runner's process group, the Ray head went down with it): nobody is left to
    end them, so the next runner on the node does. The shim joins its cgroup before the job
    starts, so a populated cgroup without it has lost it."""
    found = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            if not _NAME.match(entry.name) or not populated(entry):
                continue
            try:
                pids = (entry / "cgroup.procs").read_text().split()
            except OSError:
                continue
            if not any(SHIM_MODULE in _cmdline(pid) for pid in pids):
                found.append(entry)
    return sorted(found)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def attempt_dirs(root: Path) -> list[Path]:
    """Every ``job-N-aA-rR`` entry under ``root`` (cgroups, or runners' run directories)."""
    with contextlib.suppress(OSError):
        return sorted(e for e in root.iterdir() if _NAME.match(e.name))
    return []


def earlier_attempts(root: Path, job_id: int, attempt: int) -> list[Path]:
    """The cgroups left by earlier attempts of a job on this node (a runner that was killed
    before it could clean up): a new attempt starts only once they are empty."""
    found = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            m = _NAME.match(entry.name)
            if m and int(m.group(1)) == job_id and int(m.group(2)) < attempt:
                found.append(entry)
    return sorted(found)
