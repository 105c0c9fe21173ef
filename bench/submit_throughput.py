"""API submissions per second from 8 concurrent clients, on SQLite and on PostgreSQL; with
``--cli``, submissions through the CLI (``clusterctl submit -- python train.py``, a process
each, as a script's loop runs it): one client in a loop, then 8 at once (#33 item 4).

All GPUs are held by a blocker job, so every submission is a pure API + database write
(validated, committed, history row) that stays PENDING; the scheduler keeps scanning the
growing queue meanwhile, as it would in production.
Run: python bench/submit_throughput.py [POSTGRES_URL]  |  python bench/submit_throughput.py --cli
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Stack, concurrently, scratch_database

CLIENTS = 8
PER_CLIENT = 250


def run(db_url: str | None, label: str) -> None:
    stack = Stack(db_url)
    try:
        c = stack.client()
        c.post("/v1/jobs", json={"command": ["sleep", "600"], "gpus": 4, "workdir": "/tmp"})
        errors: list[str] = []

        def client_loop() -> None:
            with stack.client() as http:
                for _ in range(PER_CLIENT):
                    r = http.post("/v1/jobs", json={"command": ["python", "train.py"],
                                                    "gpus": 4, "workdir": "/tmp"})
                    if r.status_code != 201:
                        errors.append(r.text)

        elapsed = concurrently([client_loop] * CLIENTS)
        total = CLIENTS * PER_CLIENT
        count = len(c.get("/v1/jobs", params={"state": "PENDING", "limit": 100_000}).json())
        print(f"{label}: {total} submissions from {CLIENTS} clients in {elapsed:.2f}s = "
              f"{total / elapsed:.0f}/s; errors {len(errors)}; pending rows {count}")
        for jid in [j["id"] for j in c.get("/v1/jobs", params={"limit": 100_000}).json()]:
            c.post(f"/v1/jobs/{jid}/cancel")
    finally:
        stack.close()


def cli(loop: int = 40, clients: int = 8, each: int = 10) -> None:
    """CLI submissions per second, SQLite: ``loop`` in a row from one client, then ``each``
    from each of ``clients`` at once. With BEFORE=<a checkout of an earlier commit>, the
    same through that code too (PYTHONPATH ahead of the installed one), in the same run."""
    stack = Stack()
    work = Path(tempfile.mkdtemp(prefix="cli-submit-"))
    (work / "train.py").write_text("print('hi')\n")
    argv = [sys.executable, "-m", "clusterctl", "submit", "--gpus", "4", "--",
            "python", "train.py"]
    codes = {"now": None, **({"before": os.environ["BEFORE"]} if os.environ.get("BEFORE")
                             else {})}
    try:
        stack.client().post("/v1/jobs", json={"command": ["sleep", "600"], "gpus": 4,
                                               "workdir": "/tmp"})
        for label, path in codes.items():
            env = {**stack.env, **({"PYTHONPATH": path} if path else {})}

            def client_loop(n: int, env: dict[str, str] = env) -> None:
                for _ in range(n):
                    r = subprocess.run(argv, env=env, cwd=work, capture_output=True,
                                       timeout=120)
                    assert r.returncode == 0, r.stderr[-500:]

            t0 = time.perf_counter()
            client_loop(loop)
            one = time.perf_counter() - t0
            many = concurrently([lambda: client_loop(each)] * clients)
            print(f"CLI ({label}), one client in a loop: {loop} in {one:.1f}s = "
                  f"{loop / one:.1f}/s (goal 10/s); {clients} clients at once: "
                  f"{clients * each} in {many:.1f}s = {clients * each / many:.1f}/s (goal 10/s)")
    finally:
        stack.close()


def main() -> None:
    if sys.argv[1:] == ["--cli"]:
        cli()
        return
    run(None, "SQLite")
    if len(sys.argv) > 1:
        with scratch_database(sys.argv[1]) as url:
            run(url, "PostgreSQL")


if __name__ == "__main__":
    main()
