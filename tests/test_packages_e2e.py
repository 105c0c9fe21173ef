"""#33 item 2: an unchanged working directory is not zipped or uploaded again. On a real
controller: a second submit from the same directory sends the package's name only (the
stored package is not touched, as an upload touches it); a changed directory is shipped; a
package the controller let expire is shipped again without the user noticing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import ControllerProcess

pytestmark = pytest.mark.ray


def _aged(root: Path) -> None:
    old = os.stat(root).st_mtime - 60
    for path in [root, *root.rglob("*")]:
        os.utime(path, (old, old), follow_symlinks=False)


def test_an_unchanged_directory_is_shipped_once(controller: ControllerProcess, tmp_path: Path
                                                ) -> None:
    controller.env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("v1\n")
    _aged(work)
    packages = controller.data_dir / "packages"

    def stored() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in packages.rglob("*") if p.is_file()}

    first = controller.submit("--", "cat", "data.txt", cwd=work)
    assert controller.wait_done(first)["state"] == "SUCCEEDED"
    once = stored()
    assert len(once) == 1, once
    again = controller.submit("--", "cat", "data.txt", cwd=work)
    assert controller.wait_done(again)["state"] == "SUCCEEDED"
    assert stored() == once  # not uploaded again (an upload touches the stored package)
    assert controller.cli("logs", str(again)).stdout == "v1\n"
    (work / "data.txt").write_text("v2, longer\n")
    _aged(work)
    changed = controller.submit("--", "cat", "data.txt", cwd=work)
    assert controller.wait_done(changed)["state"] == "SUCCEEDED"
    assert controller.cli("logs", str(changed)).stdout == "v2, longer\n"
    assert len(stored()) == 2
    for p in packages.rglob("*"):  # the controller let them expire
        if p.is_file():
            p.unlink()
    back = controller.submit("--", "cat", "data.txt", cwd=work)
    assert controller.wait_done(back)["state"] == "SUCCEEDED"
    assert controller.cli("logs", str(back)).stdout == "v2, longer\n"
