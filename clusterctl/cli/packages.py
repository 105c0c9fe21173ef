"""A submit's working directory, shipped once.

A package is named by the sha256 of its zip, and the zip's bytes depend only on what the
directory holds (``workdir.pack``): the same directory is the same package. The CLI keeps,
in its cache directory, which package each directory's signature (names, sizes, modes and
times of what ``.gitignore`` leaves, ``workdir.signature``) made last; a submit from an
unchanged directory sends that name and nothing else: no reading, no zipping, no upload. The
controller may have let the package expire: then it refuses the name, and the CLI ships the
directory and submits again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import platformdirs

from clusterctl import workdir
from clusterctl.cli.client import ApiError, Client

T = TypeVar("T")
KEPT = 256
"""How many directories the cache remembers (the most recent)."""


def _cache() -> Path:
    return Path(platformdirs.user_cache_dir("clusterctl")) / "packages.json"


def _read() -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        value = json.loads(_cache().read_text())
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
    return {}


def _write(known: dict[str, str]) -> None:
    path = _cache()
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs an upload
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(dict(list(known.items())[-KEPT:])))
        os.replace(tmp, path)


def upload(c: Client, root: Path, max_bytes: int, key: str | None) -> str:
    """Zip and send the directory; remember what it made under ``key``."""
    sha = c.upload_package(workdir.pack(root, max_bytes))
    if key is not None:
        known = _read()
        known.pop(key, None)
        known[key] = sha
        _write(known)
    return sha


def submit(c: Client, body: dict[str, object], root: Path, max_bytes: int
           ) -> dict[str, object]:
    """Submit ``body`` with ``root`` as the job's directory, shipping it only if it changed
    since it was last shipped to this controller (or the controller no longer has it)."""
    return with_package(c, root, max_bytes, lambda sha: c.submit({**body, "package": sha}))


def with_package(c: Client, root: Path, max_bytes: int, send: Callable[[str], T]) -> T:
    """``send`` the name of ``root``'s package, shipping the directory first only if it
    changed since it was last shipped (or the controller refused the name: it expired)."""
    signature = workdir.signature(root, max_bytes, time.time())
    key = f"{c.url} {signature}" if signature is not None else None
    sha = _read().get(key) if key is not None else None
    if sha is not None:
        try:
            return send(sha)
        except ApiError as e:
            if e.status != 422 or "package" not in str(e):
                raise
    return send(upload(c, root, max_bytes, key))
