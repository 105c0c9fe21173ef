"""Files the controller keeps under its data directory: job logs and shipped working dirs.

Logs outlive the job and its node: the scheduler copies each rank's output here as it runs, so
``clusterctl logs`` reads from the controller, never from a worker that may be gone. They are
kept ``log_retention_s`` after the job ended (90 days by default); a package is kept while a
job that may still run uses it, and ``package_retention_s`` (7 days) after its last upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from clusterctl.store import JobStore

_SHA_RE = re.compile(r"\A[0-9a-f]{64}\Z")


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, job_id: int, attempt: int, rank: int) -> Path:
        return self.root / str(job_id) / f"a{attempt}-r{rank}.log"

    def size(self, job_id: int, attempt: int, rank: int) -> int:
        p = self.path(job_id, attempt, rank)
        return p.stat().st_size if p.exists() else 0

    def append(self, job_id: int, attempt: int, rank: int, data: bytes) -> None:
        p = self.path(job_id, attempt, rank)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "ab") as f:
            f.write(data)

    def read(self, job_id: int, attempt: int, rank: int, offset: int, limit: int) -> bytes:
        p = self.path(job_id, attempt, rank)
        if not p.exists():
            return b""
        with open(p, "rb") as f:
            f.seek(offset)
            return f.read(limit)


    def job_ids(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]

    def remove(self, job_id: int) -> None:
        shutil.rmtree(self.root / str(job_id), ignore_errors=True)


class PackageStore:
    """Zipped working directories, content-addressed by sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha: str) -> Path:
        if not _SHA_RE.match(sha):
            raise ValueError("package id must be a sha256 hex digest")
        return self.root / f"{sha}.zip"

    @staticmethod
    def valid(sha: str) -> bool:
        """A sha256 hex digest: nothing else is ever a path here (``../../etc/passwd``)."""
        return bool(_SHA_RE.match(sha))

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        else:
            target.touch()  # uploaded again: its retention starts again
        return sha

    def get(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def expire(self, keep: set[str], before: float) -> int:
        """Remove the packages not in ``keep`` last written before ``before``; how many."""
        removed = 0
        for p in self.root.glob("*.zip") if self.root.is_dir() else ():
            if p.stem not in keep and p.stat().st_mtime < before:
                p.unlink(missing_ok=True)
                removed += 1
        return removed


def expire_files(jobs: JobStore, logs: LogStore, packages: PackageStore, *, log_keep_s: float,
                 package_keep_s: float, now: float | None = None,
                 also_in_use: frozenset[str] = frozenset()) -> tuple[int, int]:
    """One housekeeping pass over the controller's files: (logs removed, packages removed).
    ``also_in_use``: packages kept besides the live jobs' (running services start replicas
    from theirs)."""
    now = time.time() if now is None else now
    cutoff = datetime.fromtimestamp(now - log_keep_s, timezone.utc)
    old = jobs.ended_before(logs.job_ids(), cutoff)
    for job_id in old:
        logs.remove(job_id)
    return len(old), packages.expire(jobs.packages_in_use() | also_in_use,
                                    now - package_keep_s)
