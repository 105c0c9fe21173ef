"""#31 item 9: the controller's disk fills up. Before, ``/healthz`` answered 200 "ok", a
submit said "database unavailable" without naming the disk, an upload got a 500, and the log
filled with tracebacks. Now, on a real controller whose whole directory is a 64 MiB tmpfs
filled to the last byte: ``/healthz`` says the disk is full (503) and every answer warns;
a submit is refused with 507 naming the disk, and nothing is half-written; freed, it serves
again by itself, with every job it had."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ControllerProcess

from clusterctl.executor.local_ray import LocalRay

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mount)],
                   check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write until the disk takes no more: megabytes, then single pages."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 512):
            chunk = b"\0" * size
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass


def test_a_full_disk_is_named_refused_cleanly_and_recovered_from(
        ray_head: LocalRay, small_disk: Path) -> None:
    c = ControllerProcess(small_disk / "ctl", ray_head.address, ray_head.token_file)
    c.start()
    try:
        work = small_disk / "work"
        work.mkdir()
        before = c.submit("--", "true", cwd=work)
        assert c.wait_done(before)["state"] == "SUCCEEDED"
        _fill(small_disk / "filler")
        health = httpx.get(f"http://127.0.0.1:{c.port}/healthz", timeout=10)
        assert health.status_code == 503, health.text
        assert "no space left" in health.json()["disk"], health.text
        assert str(c.data_dir) in health.json()["disk"]
        r = c.api("POST", "/v1/jobs", json={"command": ["true"], "gpus": 1})
        assert r.status_code == 507, r.text
        assert "no space left" in r.json()["detail"], r.text
        assert "disk" in r.headers.get("X-Clusterctl-Warning", ""), r.headers
        cli = c.cli("submit", "--", "true", cwd=work)
        assert cli.returncode == 1 and "no space left" in cli.stderr, cli.stderr
        (small_disk / "filler").unlink()
        assert httpx.get(f"http://127.0.0.1:{c.port}/healthz", timeout=10).status_code == 200
        after = c.submit("--", "true", cwd=work)
        assert c.wait_done(after)["state"] == "SUCCEEDED"
        assert [j["id"] for j in c.json("jobs", "--all")] == [before, after]  # none half-made
    finally:
        c.stop()
