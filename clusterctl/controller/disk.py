"""The controller's disk: how much room its data directory (and a SQLite database) has left,
and whether an error is that disk being full.

A full disk is not a database outage: trying again in five seconds will not help, and the
admin must be told which disk. So ``/healthz`` says so (503 at no room, a warning on every
answer when little is left), and a write that fails for space answers 507 naming the
directory, rather than "database unavailable" or a 500.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable
from pathlib import Path

FULL_BELOW = 16 << 20
"""Less room than this and the controller cannot serve: a submit's few writes fail."""
LOW_BELOW = 1 << 30
"""Less than this (or 2% of the disk) and every answer warns the admin."""
_FULL_TEXTS = ("database or disk is full", "no space left on device", "could not extend file",
               "disk full")


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a write that failed for want of space."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(seen).lower() for t in _FULL_TEXTS):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def problems(directories: Iterable[Path]) -> tuple[str | None, str | None]:
    """(full, low): what to say of the fullest of these directories' disks, if anything."""
    full = low = None
    for d in directories:
        try:
            usage = shutil.disk_usage(d)
        except OSError:
            continue
        if usage.free < FULL_BELOW:
            full = full or (f"no space left on the disk of {d} ({_mib(usage.free)} free of "
                            f"{_mib(usage.total)}): free some, then it serves again")
        elif usage.free < min(LOW_BELOW, usage.total // 50) or usage.free < LOW_BELOW // 4:
            low = low or (f"the disk of {d} is nearly full ({_mib(usage.free)} free of "
                          f"{_mib(usage.total)})")
    return full, low


def full_message(directories: Iterable[Path]) -> str:
    """What a write refused for space says: which disk, how full."""
    full, low = problems(directories)
    return full or low or "no space left on the controller's disk"


def directories(data_dir: Path, db_url: str) -> list[Path]:
    """The directories whose disks the controller writes to: its data directory, and a SQLite
    database's (PostgreSQL's disk is its server's to watch)."""
    found = [data_dir]
    if db_url.startswith("sqlite:///"):
        found.append(Path(db_url.removeprefix("sqlite:///")).parent)
    return found
