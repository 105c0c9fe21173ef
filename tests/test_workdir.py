"""The shipped working directory (#19 item 1): what a submitter's directory looks like on the
node. Run bits and links inside the directory survive; a link outside ships its content; an
archive whose link leads out of the directory is refused; .gitignore is honoured."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clusterctl.parsing import BadInput
from clusterctl.workdir import pack, unpack


def ship(src: Path, dest: Path) -> None:
    dest.mkdir()
    unpack(zipfile.ZipFile(io.BytesIO(pack(src, 1 << 20))), str(dest))


def test_modes_and_links_inside_the_directory_survive(tmp_path: Path) -> None:
    src = tmp_path / "project"
    (src / "data").mkdir(parents=True)
    run = src / "run.sh"
    run.write_text("#!/bin/sh\necho ran \"$@\"\n")
    run.chmod(0o750)
    (src / "data" / "train.csv").write_text("a,b\n")
    (src / "data" / "train.csv").chmod(0o640)
    os.symlink("data/train.csv", src / "latest.csv")
    os.symlink("data", src / "d")
    os.symlink("../run.sh", src / "data" / "run-link")
    outside = tmp_path / "secret-elsewhere.txt"
    outside.write_text("copied\n")
    os.symlink(outside, src / "elsewhere.txt")
    os.symlink(tmp_path, src / "up")  # a directory outside: not shipped
    os.symlink("missing", src / "dangling")
    (src / ".gitignore").write_text("*.log\n")
    (src / "noise.log").write_text("x")

    dest = tmp_path / "node"
    ship(src, dest)
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o750
    assert stat.S_IMODE((dest / "data" / "train.csv").stat().st_mode) == 0o640
    assert os.readlink(dest / "latest.csv") == "data/train.csv"
    assert (dest / "latest.csv").read_text() == "a,b\n"
    assert os.readlink(dest / "d") == "data" and (dest / "d" / "train.csv").exists()
    assert os.readlink(dest / "data" / "run-link") == "../run.sh"
    assert not (dest / "elsewhere.txt").is_symlink()
    assert (dest / "elsewhere.txt").read_text() == "copied\n"
    assert not (dest / "up").exists() and not (dest / "dangling").exists()
    assert not (dest / "noise.log").exists()
    out = subprocess.run(["./run.sh", "x"], cwd=dest, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "ran x\n"


@pytest.mark.parametrize("links", [
    {"sub/link": "../../etc/passwd"},
    {"sub/link": "/etc/passwd"},
    {"here": ".", "sub/link": "../here/../x"},  # inside by its words, outside once resolved
])
def test_an_archive_whose_link_leads_out_is_refused(tmp_path: Path,
                                                     links: dict[str, str]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    dest = tmp_path / "node"
    dest.mkdir()
    with pytest.raises(ValueError, match="leads out of the directory"):
        unpack(zipfile.ZipFile(buf), str(dest))
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_setuid_bits_are_not_shipped(tmp_path: Path) -> None:
    src = tmp_path / "p"
    src.mkdir()
    tool = src / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755 | stat.S_ISUID)
    dest = tmp_path / "node"
    ship(src, dest)
    assert stat.S_IMODE((dest / "tool").stat().st_mode) == 0o755


def test_the_launch_shim_stays_light() -> None:
    """The shim runs once per start: unpacking must not pull the packing side's imports."""
    out = subprocess.run([sys.executable, "-c", "import sys, clusterctl.executor.launch; "
                          "print('pathspec' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def _aged(root: Path, when: float = 1_700_000_000.0) -> None:
    """Every file as if written long ago (a directory one is not editing right now)."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (when, when), follow_symlinks=False)


def test_a_directory_packs_to_the_same_bytes_and_its_signature_tells_a_change(
        tmp_path: Path) -> None:
    """#33 item 2: a package is named by its zip's sha256, so the zip must depend on the
    directory alone; the signature (metadata only) tells the CLI whether to ship it again."""
    import time

    from clusterctl.workdir import signature

    src = tmp_path / "project"
    src.mkdir()
    (src / "train.py").write_text("print(1)\n")
    os.symlink("train.py", src / "link.py")
    (src / ".gitignore").write_text("out/\n")
    (src / "out").mkdir()
    (src / "out" / "ckpt").write_bytes(b"x" * 100)
    _aged(src)
    assert pack(src, 1 << 20) == pack(src, 1 << 20)
    first = signature(src, 1 << 20, time.time())
    assert first is not None and first == signature(src, 1 << 20, time.time())
    (src / "out" / "ckpt").write_bytes(b"y" * 200)  # ignored: no change
    _aged(src)
    assert signature(src, 1 << 20, time.time()) == first
    (src / "train.py").write_text("print(2)\n")  # same size, a new time
    assert signature(src, 1 << 20, time.time()) is None  # just written: racy, not trusted
    _aged(src, 1_700_000_100.0)
    changed = signature(src, 1 << 20, time.time())
    assert changed is not None and changed != first
    with pytest.raises(BadInput, match="working directory"):
        signature(src, 5, time.time())
