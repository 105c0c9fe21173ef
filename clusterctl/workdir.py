"""Zipping the submitter's working directory for shipment with the job.

Honours the directory's ``.gitignore`` (and never ships ``.git``), and stops as soon as the
size passes the limit instead of reading a whole home directory first.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pathspec

from clusterctl.parsing import BadInput


def _spec(root: Path) -> pathspec.PathSpec:
    lines = [".git/"]
    ignore = root / ".gitignore"
    if ignore.exists():
        lines += ignore.read_text(errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def pack(root: Path, max_bytes: int) -> bytes:
    root = root.resolve()
    spec = _spec(root)
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = sorted(
                d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")
            )
            for name in sorted(filenames):
                rel = (rel_dir / name).as_posix()
                path = Path(dirpath) / name
                if spec.match_file(rel) or not path.is_file():
                    continue
                total += path.stat().st_size
                if total > max_bytes:
                    raise BadInput(
                        "working directory",
                        f"{root} holds more than {max_bytes / (1 << 20):.0f} MiB after "
                        ".gitignore; add ignores, or use --workdir DIR to run in place on a "
                        "shared filesystem",
                    )
                info = zipfile.ZipInfo.from_file(path, rel)
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f:
                    z.writestr(info, f.read())
    return buf.getvalue()
