"""Zipping the submitter's working directory for shipment with the job, and unpacking it.

Honours the directory's ``.gitignore`` (and never ships ``.git``), and stops as soon as the
size passes the limit instead of reading a whole home directory first. File modes travel (a
``./run.sh`` stays executable), and so do symbolic links that point inside the directory (as
links, the way ``git`` and ``tar`` keep them); a link that points outside ships what it points
to, as a copy, since the target does not exist on the node.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clusterctl.parsing import BadInput

if TYPE_CHECKING:
    import pathspec


def _spec(root: Path) -> pathspec.PathSpec:
    import pathspec  # here: the launch shim imports this module for unpack alone

    lines = [".git/"]
    ignore = root / ".gitignore"
    if ignore.exists():
        lines += ignore.read_text(errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _entries(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """What a package of ``root`` holds, in order: (relative name, path, is a kept link).
    ``.gitignore`` applies; a link that stays inside is kept as a link (a linked directory
    is not walked into), one that leads out ships what it points to."""
    spec = _spec(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")
        )
        for name in [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            dirnames.remove(name)  # never walked into: kept as a link, if it stays inside
            if _link_target(root, Path(dirpath) / name) is not None:
                yield (rel_dir / name).as_posix(), Path(dirpath) / name, True
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            path = Path(dirpath) / name
            if spec.match_file(rel):
                continue
            if path.is_symlink() and _link_target(root, path) is not None:
                yield rel, path, True
            elif path.is_file():
                yield rel, path, False


def _too_big(root: Path, max_bytes: int) -> BadInput:
    return BadInput("working directory", f"{root} holds more than "
                    f"{max_bytes / (1 << 20):.0f} MiB after .gitignore; add ignores, or use "
                    "--workdir DIR to run in place on a shared filesystem")


def pack(root: Path, max_bytes: int) -> bytes:
    """The package: a zip whose bytes depend only on the files' names, contents, modes and
    times (sorted, no other metadata), so that its sha256 names the same directory the same
    way each time."""
    root = root.resolve()
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for rel, path, link in _entries(root):
            if link:
                _add_link(z, root, path, rel)
                continue
            total += path.stat().st_size
            if total > max_bytes:
                raise _too_big(root, max_bytes)
            info = zipfile.ZipInfo.from_file(path, rel)
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
    return buf.getvalue()


RACY_S = 2.0


def signature(root: Path, max_bytes: int, now: float) -> str | None:
    """What :func:`pack` would hold, from the files' metadata alone (names, sizes, modes,
    times, link targets), as git's index tells a changed file: the CLI remembers which package
    a signature made, so an unchanged directory is neither read, zipped nor sent again. None
    when a file changed in the last ``RACY_S`` seconds: written again within its time's grain
    at the same size, it would look unchanged ("racy git")."""
    root = root.resolve()
    digest = hashlib.sha256(str(root).encode())
    total = 0
    racy = False
    for rel, path, link in _entries(root):
        st = path.lstat() if link else path.stat()
        total += 0 if link else st.st_size
        if total > max_bytes:
            raise _too_big(root, max_bytes)
        racy = racy or now - st.st_mtime < RACY_S
        target = os.readlink(path) if link else ""
        digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{target}\n"
                      .encode("utf-8", "surrogateescape"))
    return None if racy else digest.hexdigest()


def _link_target(root: Path, path: Path) -> str | None:
    """The relative target of the link at ``path`` if it resolves inside ``root``."""
    try:
        resolved = path.resolve()
        resolved.relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return None  # a loop, or outside the directory
    return os.path.relpath(resolved, path.parent)


def _add_link(z: zipfile.ZipFile, root: Path, path: Path, rel: str) -> None:
    target = _link_target(root, path)
    assert target is not None  # _entries keeps only links that stay inside
    info = zipfile.ZipInfo(rel)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, target)


def unpack(archive: zipfile.ZipFile, dest: str) -> None:
    """Extract into ``dest`` with the files' modes (setuid and the like dropped), and the
    links, made last so that no file is written through one. A link that leads out of
    ``dest``, by its words or once every link is resolved, is refused (``ValueError``) and none
    is left: :func:`pack` never makes one."""
    links = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            links.append(info)
            continue
        path = archive.extract(info, dest)
        if not info.is_dir() and mode & 0o777:
            os.chmod(path, mode & 0o777)
    made: list[str] = []
    root = os.path.realpath(dest)
    try:
        for info in links:
            name = os.path.normpath(info.filename)
            target = archive.read(info).decode()
            if os.path.isabs(name) or name == ".." or name.startswith("../") \
                    or os.path.isabs(target):
                raise ValueError(f"the link {info.filename} -> {target} leads out of the "
                                 "directory")
            path = os.path.join(dest, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(target, path)
            made.append(path)
        for path in made:
            real = os.path.realpath(path)
            if real != root and not real.startswith(root + os.sep):
                raise ValueError(f"the link {os.path.relpath(path, dest)} -> "
                                 f"{os.readlink(path)} leads out of the directory")
    except ValueError:
        for path in made:
            os.unlink(path)
        raise
