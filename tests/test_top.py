"""`clusterctl top` (#19 item 6): one frame from the API's nodes and jobs, as nvitop users
expect: bars, a short history per GPU, the running jobs' cost per hour, the queue's reasons."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from rich.console import Console

from clusterctl.cli.nodes import TopView, bar, cost_per_hour, sparkline, title

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def gpu(index: int, util: float, job: int | None) -> dict[str, Any]:
    return {"index": index, "uuid": f"GPU-{index}", "job_id": job, "user": "ann" if job else None,
            "utilization": util, "memory_used_bytes": 40 << 30, "memory_total_bytes": 80 << 30,
            "power_watts": 300.0, "temperature_celsius": 70.0, "model": "A100",
            "sampled_at": (NOW - timedelta(seconds=2)).isoformat(), "error": None}


def nodes(util: float) -> list[dict[str, Any]]:
    return [{"id": "r1", "name": "node-a", "gpus": 2, "free_gpus": 1, "alive": True,
             "gpu_model": "A100", "gpu_hour_cost": 1.25,
             "gpu_jobs": [gpu(0, util, 7), gpu(1, 0.0, None)]}]


JOBS = [
    {"id": 7, "name": "train", "user": "ann", "team": "vision", "state": "RUNNING", "gpus": 1,
     "nodes": 1, "node_names": ["node-a"], "started_at": (NOW - timedelta(hours=1)).isoformat(),
     "submitted_at": NOW.isoformat(), "ended_at": None},
    {"id": 8, "name": "big", "user": "bo", "team": "nlp", "state": "PENDING", "gpus": 4,
     "nodes": 1, "node_names": [], "started_at": None, "submitted_at": NOW.isoformat(),
     "ended_at": None, "wait_reason": "resources", "wait_detail": "needs 4 GPUs; 1 free"},
]


def render(view: TopView, util: float) -> str:
    console = Console(record=True, width=200)
    console.print(view.frame(nodes(util), JOBS, now=NOW))
    return console.export_text()


def test_bars_and_sparklines() -> None:
    assert bar(0.5) == "█████░░░░░" and bar(None) == " " * 10 and bar(1.7) == "█" * 10
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"


def test_a_frame_shows_gpus_history_cost_and_the_queue() -> None:
    view = TopView()
    render(view, 0.2)
    text = render(view, 0.9)  # the second read: two points of history
    gpu0 = next(line for line in text.splitlines() if line.startswith("node-a"))
    assert "█████████░" in gpu0 and "90%" in gpu0 and "▂█" in gpu0
    assert "$1.25" in text  # one GPU of node-a for job 7
    assert "big" in text and "resources: needs 4 GPUs; 1 free" in text
    assert cost_per_hour(JOBS[0], nodes(0.5)) == 1.25
    unpriced = nodes(0.5)
    unpriced[0]["gpu_hour_cost"] = None
    assert cost_per_hour(JOBS[0], unpriced) is None


def test_a_drained_nodes_gpus_are_counted_apart_not_as_free() -> None:
    """#31 item 10: the header counted a drained node's idle GPUs as free."""
    fleet = [*nodes(0.5), {**nodes(0.5)[0], "id": "r2", "name": "node-b", "free_gpus": 2,
                           "drained": True}]
    assert title(fleet) == "2 node(s), 4 GPU(s), 1 free, 2 drained"
    assert title(nodes(0.5)) == "1 node(s), 2 GPU(s), 1 free"
