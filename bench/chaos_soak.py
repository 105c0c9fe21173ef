"""The 30-minute chaos soak (#17, item 11): tests/chaos.py's stream of jobs and faults
(controller, runner, agent and worker-node SIGKILLs, PostgreSQL cut behind a proxy) for
CHAOS_SECONDS (1800 by default), then every invariant. Needs CLUSTERCTL_TEST_PG_URL.
Run: python bench/chaos_soak.py  (prints the seed, the figures and any violation)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clusterctl.executor.local_ray import ensure_token  # noqa: E402

TOKEN = ensure_token(Path(tempfile.mkdtemp(prefix="chaos-ray-")) / "auth_token")
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(TOKEN))

from chaos import Chaos  # noqa: E402
from common import scratch_database  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402


def main() -> None:
    seconds = float(os.environ.get("CHAOS_SECONDS", "1800"))
    base = os.environ["CLUSTERCTL_TEST_PG_URL"]
    root = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    with scratch_database(base) as direct:
        url = make_url(direct)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        proxy.start()
        db = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        seed = int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED") else None
        chaos = Chaos(root, TOKEN, db, direct, proxy.cut, proxy.start, seed=seed)
        started = time.monotonic()
        try:
            chaos.start()
            chaos.run(seconds, fault_every_s=(10, 30))
            report = chaos.check(chaos.settle(timeout_s=600))
        finally:
            chaos.stop()
            proxy.cut()
    print(report.summary())
    for v in report.violations:
        print("VIOLATION", v)
    print(json.dumps({"seconds": seconds, "wall_s": round(time.monotonic() - started),
                      "seed": report.seed, "jobs": report.jobs, "attempts": report.attempts,
                      "states": report.states, "faults": len(report.events),
                      "samples": report.samples, "violations": len(report.violations)}))
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
