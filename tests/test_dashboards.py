"""Every PromQL expression in the shipped Grafana dashboards names only metrics, and labels,
that the agent and the controller really export: read from a live /metrics of each while a
job runs (so the per-job series exist), with the quotas and hardware inventory set."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from harness import Agent, ControllerProcess
from prometheus_client.parser import text_string_to_metric_families

from clusterctl.executor.local_ray import LocalRay

DASHBOARDS = Path(__file__).resolve().parents[1] / "ansible/roles/monitoring/files/dashboards"
# Labels Prometheus adds from the scrape (prometheus.yml.j2), and the agent's own `job` label,
# which Prometheus renames exported_job since `job` is the scrape job's.
SCRAPE_LABELS = {"job", "instance", "instance_node"}
RENAMED = {"exported_job": "job", "exported_instance": "instance"}
FUNCTIONS_AND_WORDS = {
    "sum", "avg", "min", "max", "count", "rate", "increase", "irate", "avg_over_time",
    "sum_over_time", "max_over_time", "label_values", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            out += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel["targets"]]
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                out.append((f"{path.name}: ${var['name']}", var["definition"]))
    return out


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) of a PromQL expression."""
    labels: set[str] = set()
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values and strings
    for inner in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", inner))
    expr = re.sub(r"\{[^}]*\}", "", expr)
    for inner in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in inner.split(",") if x.strip()}
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges: [5m], [$__range]
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    words = set(re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)", expr))
    if "label_values" in words:  # label_values(metric, label)
        m = re.search(r"label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)", expr)
        assert m is not None
        labels.add(m.group(2))
        words.discard(m.group(2))
    metrics = {w for w in words if w not in FUNCTIONS_AND_WORDS and not re.fullmatch(
        r"\d.*|e\d+", w)}
    return metrics, labels


def test_the_expression_reader_finds_metrics_and_labels() -> None:
    metrics, labels = names_in(
        'sum by (team) (avg_over_time(clusterctl_x{state="A b", user!=""}[1d])) * 24 '
        '/ on (node) increase(y_total[$__range]) / 3.6e6')
    assert metrics == {"clusterctl_x", "y_total"}
    assert labels == {"team", "state", "user", "node"}


def scrape(url: str) -> dict[str, set[str]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    seen: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            seen.setdefault(s.name, set()).update(s.labels)
    return seen


@pytest.mark.ray
def test_dashboards_name_only_exported_metrics_and_labels(ray_head: LocalRay,
                                                          tmp_path: Path) -> None:
    controller = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file)
    controller.env["CLUSTERCTL_QUOTAS"] = "default=2,other=2"
    controller.start()
    try:
        seen = live_metrics(controller, tmp_path)
    finally:
        controller.stop()
    check(seen)


def live_metrics(controller: ControllerProcess, tmp_path: Path) -> dict[str, set[str]]:
    """Both endpoints while one job runs (2 of 4 GPUs) and one waits (for all 4)."""
    assert controller.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                          "--price", "100000", "--purchased",
                          (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat(),
                          "--life", "36mo", "--resale", "0.2").returncode == 0
    token = controller.cli("admin", "node-token", "node-a").stdout.strip()
    agent = Agent(tmp_path / "agent", "node-a", f"http://127.0.0.1:{controller.port}", token)
    agent.start()
    try:
        job = controller.submit("--gpus", "2", "--", "python3", "-c", "import time; "
                                "time.sleep(30)")
        controller.wait_state(job, {"RUNNING"})
        controller.submit("--gpus", "4", "--", "true")
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the agent labels the job's GPUs
            seen = scrape(f"http://127.0.0.1:{agent.port}")
            if "job" in seen.get("clusterctl_gpu_utilization_ratio", set()):
                break
            time.sleep(1)
        for name, labels in scrape(controller.metrics_url).items():
            seen.setdefault(name, set()).update(labels)
    finally:
        agent.stop()
    return seen


def check(seen: dict[str, set[str]]) -> None:
    assert "job" in seen["clusterctl_gpu_utilization_ratio"]

    exprs = expressions()
    assert len(exprs) >= 20
    used: set[str] = set()
    for where, expr in exprs:
        metrics, labels = names_in(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        for metric in metrics:
            assert metric in seen, f"{where}: {metric} is not exported ({expr!r})"
            used.add(metric)
            for label in labels:
                label = RENAMED.get(label, label)
                assert label in seen[metric] | SCRAPE_LABELS, (
                    f"{where}: {metric} has no label {label} ({expr!r})")
    # The dashboards cover what the issue asks for: per-GPU readings, per-job and per-team
    # use, the queue, and cost.
    for needed in ("clusterctl_gpu_utilization_ratio", "clusterctl_gpu_memory_used_bytes",
                   "clusterctl_gpu_power_watts", "clusterctl_gpu_energy_joules_total",
                   "clusterctl_job_gpus", "clusterctl_team_gpus", "clusterctl_jobs",
                   "clusterctl_queue_oldest_wait_seconds", "clusterctl_team_cost_dollars_per_hour"):
        assert needed in used, needed
