"""Submit-to-RUNNING latency on an idle local cluster: 50 one-GPU jobs, one at a time.

Latency is measured on the controller's own records (started_at - submitted_at), where
started_at is when the runner had the user's process running.
Run: python bench/submit_latency.py
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime

from common import Stack

N = 50


def main() -> None:
    stack = Stack()
    try:
        c = stack.client()
        latencies = []
        for i in range(N):
            job = c.post("/v1/jobs", json={"command": [sys.executable, "-c", "pass"],
                                           "gpus": 1, "workdir": "/tmp",
                                           "name": f"lat-{i}"}).json()
            while True:
                j = c.get(f"/v1/jobs/{job['id']}").json()
                if j["state"] in ("SUCCEEDED", "FAILED"):
                    break
                time.sleep(0.02)
            assert j["state"] == "SUCCEEDED", j
            latencies.append((datetime.fromisoformat(j["started_at"])
                              - datetime.fromisoformat(j["submitted_at"])).total_seconds())
        latencies.sort()
        p95 = latencies[int(0.95 * (N - 1))]
        print(f"submit-to-RUNNING over {N} jobs: median {statistics.median(latencies):.3f}s, "
              f"p95 {p95:.3f}s, min {latencies[0]:.3f}s, max {latencies[-1]:.3f}s")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
