"""#33 item 3: short jobs back to back. One array of 200 one-second jobs on 8 simulated GPUs
(one GPU each), from the submit to the last job's end, against the ideal of 200 / 8 x 1 s =
25 s (goal: 60 % of the ideal or better). Also where the time between two jobs on a GPU goes:
from one job's end to the next one's start, as the controller recorded them.
Run: python bench/drain.py [JOBS]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime

from common import Stack

GPUS = 8


def main(jobs: int) -> None:
    stack = Stack(gpus=GPUS)
    try:
        c = stack.client()
        t0 = time.monotonic()
        r = c.post("/v1/jobs", json={"command": [sys.executable, "-c",
                                                 "import time; time.sleep(1)"],
                                     "gpus": 1, "workdir": "/tmp", "name": "drain",
                                     "array": f"0-{jobs - 1}"})
        assert r.status_code == 201, r.text
        while True:
            rows = c.get("/v1/jobs", params={"all": "true", "limit": jobs + 10}).json()
            ended = [j for j in rows if j["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")]
            if len(ended) >= jobs:
                break
            time.sleep(0.2)
        wall = time.monotonic() - t0
        bad = [j for j in ended if j["state"] != "SUCCEEDED"]
        assert not bad, bad[:3]
        ideal = jobs / GPUS * 1.0
        starts = sorted(datetime.fromisoformat(j["started_at"]).timestamp() for j in ended)
        ends = sorted(datetime.fromisoformat(j["ended_at"]).timestamp() for j in ended)
        runs = [datetime.fromisoformat(j["ended_at"]).timestamp()
                - datetime.fromisoformat(j["started_at"]).timestamp() for j in ended]
        # A GPU frees at each end; the next start after it (but the first GPUS) fills it.
        gaps = [s - e for s, e in zip(starts[GPUS:], ends[:len(starts) - GPUS], strict=True)]
        print(f"{jobs} one-second jobs on {GPUS} GPUs: {wall:.1f} s from the submit to the "
              f"last end; ideal {ideal:.0f} s: {100 * ideal / wall:.0f} % of the ideal")
        print(f"a job's recorded run: median {statistics.median(runs):.2f} s; from a GPU "
              f"freed to the next start: median {statistics.median(gaps):.2f} s, p95 "
              f"{sorted(gaps)[int(0.95 * (len(gaps) - 1))]:.2f} s")
    finally:
        stack.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
