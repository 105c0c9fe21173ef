"""One controller per database: two would both launch the same pending jobs and settle each
other's attempts. The controller holds a lease for its whole life, and a second one refuses to
start, naming the host and process that hold it.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection kept open for
  the controller's life; its ``application_name`` says who holds it. The server drops the lock
  when that connection goes, so a crashed controller leaves nothing to clean up.
- SQLite: an exclusive ``flock`` on a file beside the database, holding ``host pid``; the
  kernel drops it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clusterctl.store.db import normalize_url

LOCK_KEY = 0x636C7573  # "clus": one lock per database, whatever else uses advisory locks


class LeaseHeld(RuntimeError):
    """Another controller runs on this database."""


def who() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class Lease:
    def __init__(self, release: Any) -> None:
        self._release = release

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self._release()


def acquire(url: str) -> Lease:
    """The controller's lease on the database at ``url``; :class:`LeaseHeld` naming the holder
    if another controller has it."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite(url)
    return _postgres(url)


def _sqlite(url: str) -> Lease:
    database = make_url(url).database
    if not database or database == ":memory:":
        return Lease(lambda: None)
    path = Path(database).with_name(Path(database).name + ".controller.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise LeaseHeld(f"another controller uses {database}: {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, who().encode(), 0)

    def release() -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    return Lease(release)


def _postgres(url: str) -> Lease:
    me = f"clusterctl-controller {who()}"
    engine = create_engine(url, pool_size=1, max_overflow=0,
                           connect_args={"application_name": me[:63]})
    conn = engine.connect()
    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
    conn.commit()
    if not got:
        holder = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = :k "
            "AND l.granted AND l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"), {"k": LOCK_KEY}).scalar()
        conn.close()
        engine.dispose()
        name = (holder or "another process").removeprefix("clusterctl-controller ")
        raise LeaseHeld(f"another controller uses database {make_url(url).database}: {name}")

    def release() -> None:
        conn.close()
        engine.dispose()

    return Lease(release)
