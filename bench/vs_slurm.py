"""#33 item 5: clusterctl beside Slurm on this machine, the same figures measured in one run.

Slurm is Debian's slurm-wlm (installed here with apt-get when missing): one node, 8 GPUs
declared as GRES (no device files: nothing runs on a GPU), 8 CPUs declared so that 8
one-GPU jobs fit at once, its scheduler's defaults otherwise; clusterctl is `clusterctl up`
on a real Ray with 8 simulated GPUs (bench/common.py). Measured, each side by side:
- a command's answer (median of 15): `squeue` against `clusterctl jobs`, `sbatch --wrap true`
  against `clusterctl submit -- true`, beside a bare Python;
- submissions through each one's command, one client in a loop (40) and 8 clients at once
  (10 each), onto a full cluster (every job stays pending: a submit is the write alone);
- the drain of one array of 200 one-second jobs on 8 GPUs, submit to last end, against the
  ideal 25 s.
Run (as root: Slurm's daemons are started here and stopped at the end): python bench/vs_slurm.py
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Stack, concurrently, median_s

GPUS = 8
RUNS = 15
LOOP, CLIENTS, EACH = 40, 8, 10
DRAIN = 200

CONF = """ClusterName=bench
SlurmctldHost={host}
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={gpus} RealMemory=8000 Gres=gpu:{gpus} State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slurm:
    """slurmctld and slurmd on this machine, from a configuration of their own (SLURM_CONF):
    nothing under /etc/slurm is touched."""

    def __init__(self) -> None:
        if shutil.which("slurmctld") is None:
            subprocess.run(["apt-get", "install", "-y", "-qq", "slurmctld", "slurmd",
                            "slurm-client", "munge"], check=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
        self.root = Path(tempfile.mkdtemp(prefix="slurm-bench-"))
        for d in ("state", "spool"):
            (self.root / d).mkdir()
        host = socket.gethostname()
        (self.root / "slurm.conf").write_text(CONF.format(
            host=host, root=self.root, gpus=GPUS, ctld_port=free_port(), d_port=free_port()))
        # Slurm drops a GPU without a device file: each gets a character device of its own
        # (/dev/null's numbers), never opened, since no job here asks for a real GPU.
        (self.root / "dev").mkdir()
        for i in range(GPUS):
            os.mknod(self.root / "dev" / f"gpu{i}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (self.root / "gres.conf").write_text(
            f"NodeName={host} Name=gpu File={self.root}/dev/gpu[0-{GPUS - 1}]\n")
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}
        self.daemons = [subprocess.Popen([d, "-D"], env=self.env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                        for d in ("slurmctld", "slurmd")]
        deadline = time.monotonic() + 60
        while self.run("sinfo", "-h", "-o", "%T").stdout.strip() != "idle":
            assert time.monotonic() < deadline, (self.root / "slurmctld.log").read_text()[-2000:]
            time.sleep(0.5)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)

    def close(self) -> None:
        self.run("scancel", "--user=root")
        for p in self.daemons:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # slurmd waits out its jobs' steps at times
                p.kill()
                p.wait()


def rates(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Submissions per second: LOOP from one client, then EACH from CLIENTS at once."""
    def loop(n: int) -> None:
        for _ in range(n):
            r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr[-500:]

    t0 = time.perf_counter()
    loop(LOOP)
    one = LOOP / (time.perf_counter() - t0)
    return one, CLIENTS * EACH / concurrently([lambda: loop(EACH)] * CLIENTS)


def slurm_drain(slurm: Slurm) -> float:
    t0 = time.monotonic()
    r = slurm.run("sbatch", f"--array=0-{DRAIN - 1}", "--gres=gpu:1", "-c", "1", "-o",
                  "/dev/null", "--wrap", "sleep 1")
    assert r.returncode == 0, r.stderr
    while slurm.run("squeue", "-h", "-o", "%i").stdout.strip():
        time.sleep(0.2)
    return time.monotonic() - t0


def clusterctl_drain(stack: Stack) -> float:
    c = stack.client()
    t0 = time.monotonic()
    r = c.post("/v1/jobs", json={"command": ["sleep", "1"], "gpus": 1, "workdir": "/tmp",
                                 "array": f"0-{DRAIN - 1}"})
    assert r.status_code == 201, r.text
    while c.get("/v1/jobs", params={"limit": DRAIN + 10}).json():
        time.sleep(0.2)
    return time.monotonic() - t0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="vs-slurm-"))
    slurm, stack = Slurm(), Stack(gpus=GPUS)
    try:
        env = stack.env
        py = [sys.executable, "-m", "clusterctl"]
        base = median_s([sys.executable, "-c", "import json, http.client"], env, work, RUNS)
        rows = [("a command's answer, bare Python", base, base)]
        rows.append(("`squeue` / `clusterctl jobs`", median_s(["squeue"], slurm.env, work, RUNS),
                     median_s([*py, "jobs"], env, work, RUNS)))
        sb = ["sbatch", "-o", "/dev/null", "--wrap", "true"]
        rows.append(("`sbatch --wrap true` / `clusterctl submit -- true`",
                     median_s(sb, slurm.env, work, RUNS), median_s([*py, "submit", "--", "true"],
                                                               env, work, RUNS)))
        print("| figure | Slurm | clusterctl |\n| --- | --- | --- |")
        for name, s, c in rows:
            print(f"| {name} | {s * 1000:.0f} ms | {c * 1000:.0f} ms |")
        slurm.run("scancel", "--user=root")
        for j in stack.client().get("/v1/jobs", params={"limit": 1000}).json():
            stack.client().post(f"/v1/jobs/{j['id']}/cancel")
        print(f"| drain of {DRAIN} one-second jobs on {GPUS} GPUs (ideal {DRAIN / GPUS:.0f} s) "
              f"| {slurm_drain(slurm):.1f} s | {clusterctl_drain(stack):.1f} s |")
        # A full cluster: each submission is the write alone.
        slurm.run("sbatch", "--gres=gpu:8", "-c", "8", "-o", "/dev/null", "--wrap", "sleep 600")
        stack.client().post("/v1/jobs", json={"command": ["sleep", "600"], "gpus": GPUS,
                                              "workdir": "/tmp"})
        s1, s8 = rates(["sbatch", "-o", "/dev/null", "--gres=gpu:1", "--wrap", "python train.py"],
                        slurm.env, work)
        (work / "train.py").write_text("print('hi')\n")
        c1, c8 = rates([*py, "submit", "--gpus", "1", "--", "python", "train.py"], env, work)
        print(f"| submissions, one client in a loop ({LOOP}) | {s1:.1f}/s | {c1:.1f}/s |")
        print(f"| submissions, {CLIENTS} clients at once ({EACH} each) | {s8:.1f}/s "
              f"| {c8:.1f}/s |")
    finally:
        stack.close()
        slurm.close()


if __name__ == "__main__":
    main()
