"""Signals to a job's process group (``executor/job_input.py``) never reach the runner's own."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal
from clusterctl.executor.job_input import killpg
master, _ = os.openpty()  # a terminal no job has taken yet: no foreground group
killpg(os.tcgetpgrp(master), signal.SIGHUP)  # what a hangup at that moment did
killpg(os.getpgrp(), signal.SIGHUP)
print("runner alive")
"""


def test_a_hangup_on_a_terminal_without_a_foreground_group_spares_the_runner() -> None:
    """``tcgetpgrp`` answers 0 for a pseudo-terminal with no foreground process group, and
    ``killpg(0)`` signals the caller's own group: the runner's, which SIGHUP ends. Run in a
    session of its own, so that the broken version ends only this child."""
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=30, start_new_session=True)
    assert (r.returncode, r.stdout) == (0, "runner alive\n"), (r.returncode, r.stderr)
