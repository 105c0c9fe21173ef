"""The tests' ports: each xdist worker has a range of its own, outside the ports Ray and the
kernel hand out, and never gives the same port twice in a row of servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ports

HERE = Path(__file__).parent


def _range_of(worker: str, count: str) -> range:
    code = "import ports; r = ports._RANGE; print(r.start, r.stop)"
    env = {**os.environ, "PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": count}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, check=True,
                         capture_output=True, text=True).stdout.split()
    return range(int(out[0]), int(out[1]))


def test_workers_draw_from_ranges_of_their_own_outside_ray_and_the_kernel() -> None:
    ranges = [_range_of(f"gw{i}", "4") for i in range(4)]
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for i, r in enumerate(ranges):
        assert r.start >= 20000 and r.stop - 1 < low, r  # above Ray's worker ports (10002+)
        assert len(r) >= 1000
        for other in ranges[i + 1:]:
            assert not set(r) & set(other)


def test_successive_ports_differ_and_are_free() -> None:
    got = [ports.free_port() for _ in range(50)]
    assert len(set(got)) == 50
    assert all(p in ports._RANGE for p in got)
