"""An installation's first steps: the controller's files made its own, and the local user made
the admin whose token the CLI holds."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path

from clusterctl.store import UserStore


def local_user_name() -> str:
    raw = getpass.getuser()
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("-.") or "admin"
    return cleaned[:64]


def private(data: Path, db_url: str) -> None:
    """The controller's files are its own: the database holds job environments and token
    hashes, the data directory logs and packages. New files are made 0600 (umask 077, for
    this process and the Ray head it starts), and what an older version left readable is
    closed (0700 directories, 0600 files)."""
    os.umask(0o077)
    data.chmod(0o700)
    for sub in ("logs", "packages"):
        if (data / sub).is_dir():
            (data / sub).chmod(0o700)
    if db_url.startswith("sqlite:///"):
        db = Path(db_url.removeprefix("sqlite:///"))
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if path.exists():
                path.chmod(0o600)


@dataclass
class Bootstrap:
    user: str
    token: str | None
    """A new token when one was made (write it to the CLI config), else None."""


def bootstrap_admin(users: UserStore, existing_token: str | None) -> Bootstrap:
    """Make sure the local OS user is an admin whose token the CLI holds."""
    name = local_user_name()
    if existing_token:
        user = users.by_token(existing_token)
        if user is not None and user.is_admin:
            return Bootstrap(user.name, None)
    if users.by_name(name) is None:
        _, token = users.add(name, "default", is_admin=True)
    else:
        rotated = users.rotate(name)
        assert rotated is not None
        token = rotated
    return Bootstrap(name, token)
