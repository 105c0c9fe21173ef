"""#31 item 7: ``plan`` on traces a bad day hands it. Before, each of these was a traceback
(exit 1), ran on for minutes (a 999,999,999,989-GPU job) or grew without bound
(``--trace /dev/zero`` reached 23 GB). Now a bad row is counted and skipped with its line
number, a file that is mostly bad (or not a file) is refused in one line with exit 2, and
every run here ends within its timeout under a 2 GiB address-space limit."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "JobID|User|Account|Submit|Start|End|State|AllocTRES|NNodes|Timelimit\n"
GOOD = [f"{i}|ann|vision|2024-03-0{i}T10:00:00|2024-03-0{i}T10:05:00|2024-03-0{i}T11:00:00|"
        f"COMPLETED|gres/gpu=2|1|02:00:00\n" for i in range(1, 9)]
CSV = "submit_s,duration_s,num_gpus,team\n"


def _bounded() -> None:
    limit = 2 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def plan(trace: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clusterctl", "plan", "--trace", str(trace), "--fleet",
         "2x8:A100", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        preexec_fn=_bounded,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "CLUSTERCTL_URL": "http://127.0.0.1:9"})


@pytest.mark.parametrize(("name", "text", "says"), [
    ("infinite duration", CSV + "0,inf,1,a\n", "duration_s: must be a number from 0"),
    ("infinite GPUs", CSV + "0,60,inf,a\n", "num_gpus: must be a number from 1"),
    ("a GPU count past any fleet", CSV + "0,60,999999999989,a\n", "num_gpus"),
    ("sacct in 1970", HEADER + GOOD[0].replace("2024-03-01", "1970-01-01"), "from 1990"),
    ("sacct in 2100", HEADER + GOOD[0].replace("2024-03-01", "2100-03-01"), "from 1990"),
    ("sacct in 9999", HEADER + GOOD[0].replace("2024-03-01", "9999-12-31"), "from 1990"),
    ("sacct with a GPU count past any fleet",
     HEADER + GOOD[0].replace("gres/gpu=2", "gres/gpu=999999999989"), "is not a job"),
])
def test_a_trace_of_absurd_values_is_refused_in_one_line(
        tmp_path: Path, name: str, text: str, says: str) -> None:
    f = tmp_path / "trace.txt"
    f.write_text(text)
    r = plan(f, tmp_path)
    assert r.returncode == 2, (name, r.stderr[-2000:])
    assert r.stderr.startswith("error: --trace:") and says in r.stderr, (name, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_few_bad_lines_among_good_ones_are_counted_never_fatal(tmp_path: Path) -> None:
    f = tmp_path / "sacct.txt"
    with open(f, "wb") as out:
        out.write(HEADER.encode())
        for line in GOOD:
            out.write(line.encode())
        out.write(b"99|b\xff\xfeb|x|not a time|||FAILED|gres/gpu=1|1|1\n")  # not UTF-8
    r = plan(f, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 line(s) did not parse" in r.stdout and "line 10:" in r.stdout, r.stdout


def test_a_line_of_50_mb_is_read_through_in_pieces_and_left_out(tmp_path: Path) -> None:
    f = tmp_path / "long.csv"
    with open(f, "w") as out:
        out.write(CSV + "".join(f"{i},60,1,a\n" for i in range(9)))
        out.write("1," + "9" * (50 << 20) + ",1,a\n")
        out.write("10,60,1,a\n")
    r = plan(f, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "line 11: longer than 1 MiB" in r.stdout, r.stdout[-2000:]


def test_files_that_are_no_trace_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4096)
    r = plan(binary, tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: --trace:"), r.stderr[-2000:]
    r = plan("/dev/zero", tmp_path)  # endless, without a newline
    assert r.returncode == 2 and "/dev/zero is not a regular file" in r.stderr, r.stderr
