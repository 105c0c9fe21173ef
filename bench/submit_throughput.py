"""API submissions per second from 8 concurrent clients, on SQLite and on PostgreSQL.

All GPUs are held by a blocker job, so every submission is a pure API + database write
(validated, committed, history row) that stays PENDING; the scheduler keeps scanning the
growing queue meanwhile, as it would in production.
Run: python bench/submit_throughput.py [POSTGRES_URL]
"""

from __future__ import annotations

import sys
import threading
import time

from common import Stack, scratch_database

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

        threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        total = CLIENTS * PER_CLIENT
        count = len(c.get("/v1/jobs", params={"state": "PENDING", "limit": 100_000}).json())
        print(f"{label}: {total} submissions from {CLIENTS} clients in {elapsed:.2f}s = "
              f"{total / elapsed:.0f}/s; errors {len(errors)}; pending rows {count}")
        for jid in [j["id"] for j in c.get("/v1/jobs", params={"limit": 100_000}).json()]:
            c.post(f"/v1/jobs/{jid}/cancel")
    finally:
        stack.close()


def main() -> None:
    run(None, "SQLite")
    if len(sys.argv) > 1:
        with scratch_database(sys.argv[1]) as url:
            run(url, "PostgreSQL")


if __name__ == "__main__":
    main()
