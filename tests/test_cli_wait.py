"""`wait` against a controller that does not answer (#19 item 7): retried with backoff until
--timeout, then exit 3 naming why; exit 1 is kept for a job that did not succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ports import free_port


def test_an_unreachable_controller_is_retried_until_the_timeout_then_exit_3(
        tmp_path: Path) -> None:
    env = {**os.environ, "CLUSTERCTL_URL": f"http://127.0.0.1:{free_port()}",
           "CLUSTERCTL_CONFIG": str(tmp_path / "none.toml"), "CLUSTERCTL_TOKEN": "x"}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "clusterctl", "wait", "7", "--timeout", "3s"],
                       env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 3, r.stderr
    assert "trying again until --timeout" in r.stderr  # said once, while it retried
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: timed out after 3s: cannot reach the controller"), last
    assert took >= 3  # it kept trying for the whole timeout, not one attempt
    bad = subprocess.run([sys.executable, "-m", "clusterctl", "wait", "7", "--timeout", "x"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --timeout:")
