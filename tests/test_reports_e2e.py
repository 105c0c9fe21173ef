"""`clusterctl report` end to end: the real command against a controller on a real Ray head,
in every output form, and bad input refused in one line with exit 2."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from harness import ControllerProcess

pytestmark = pytest.mark.ray
PNG = b"\x89PNG\r\n\x1a\n"


def test_reports_in_every_form(controller: ControllerProcess, tmp_path: Path) -> None:
    bought = (datetime.now(timezone.utc) - timedelta(days=200)).date().isoformat()
    assert controller.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                          "--price", "120000", "--purchased", bought, "--life", "36mo",
                          "--resale", "0.2", "--monthly-fees", "800").returncode == 0
    job = controller.submit("--gpus", "2", "--name", "short", "--", "sleep", "2")
    assert controller.wait_done(job)["state"] == "SUCCEEDED"

    shown = controller.show(job)
    assert shown["cost"]["currency"] == "USD"  # a few seconds: under a cent, shown as 0.00
    assert shown["cost"]["gpu_hours"] == pytest.approx(2 * 2 / 3600, rel=0.5)
    assert not shown["idle_gpus"]
    assert "cost so far" in controller.cli("show", str(job)).stdout

    cost = controller.json("report", "cost", "--since", "1h")
    rows = {r["key"]: r for r in cost["rows"]}
    assert rows[str(job)]["gpu_hours"] > 0 and rows[str(job)]["capacity_cost"] >= 0
    assert rows[str(job)]["total_cost"] == shown["cost"]["total_cost"]
    for key in ("gpu_hours", "energy_kwh", "capacity_cost", "energy_cost", "total_cost",
                "cloud_equivalent"):
        assert key in rows[str(job)]
    assert rows["(idle)"]["kind"] == "idle"
    # The machine was bought 200 days ago but its agent began minutes ago: the hour before is
    # "not tracked", not idle (the idle row is the few minutes since, less the job's GPUs).
    assert rows["(not tracked)"]["kind"] == "not-tracked"
    assert 3.5 < rows["(not tracked)"]["gpu_hours"] < 4
    assert rows["(idle)"]["gpu_hours"] < 0.5
    assert cost["total"]["not_tracked_cost"] == rows["(not tracked)"]["total_cost"]
    assert cost["total"]["total_cost"] == pytest.approx(
        cost["total"]["capacity_cost"] + cost["total"]["energy_cost"], abs=0.011)
    # About an hour of 4 GPUs at c = ($96,000 / (36 x 730.5) + $800 / 730.5) / 4 per GPU-hour.
    assert cost["total"]["capacity_cost"] == pytest.approx(4 * 1.1863, rel=0.02)

    loaded = controller.json("report", "cost", "--since", "1h", "--by", "user", "--loaded")
    assert all(r["kind"] != "idle" for r in loaded["rows"])
    assert sum(r["total_cost"] for r in loaded["rows"]) == pytest.approx(
        cost["total"]["total_cost"], abs=0.02)

    table = controller.cli("report", "cost", "--since", "1h")
    assert table.returncode == 0 and "(idle)" in table.stdout and "short" in table.stdout
    out = controller.cli("report", "cost", "--since", "1h", "--csv")
    parsed = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["key"] for r in parsed} == {str(job), "(idle)", "(not tracked)"}

    util = controller.json("report", "utilization", "--since", "1h", "--by", "job")
    assert util["rows"][0]["key"] == str(job) and util["rows"][0]["gpu_hours"] > 0
    by_type = controller.json("report", "cost", "--since", "1h", "--by", "gpu-type")
    assert [r["key"] for r in by_type["rows"] if r["kind"] == "gpu-type"] == ["A100"]
    assert by_type["rows"][0]["total_cost"] == rows[str(job)]["total_cost"]
    util_type = controller.json("report", "utilization", "--since", "1h", "--by", "gpu-type")
    assert [r["key"] for r in util_type["rows"]] == ["A100"]
    png = tmp_path / "by-type.png"
    assert controller.cli("report", "utilization", "--since", "1h", "--by", "gpu-type",
                          "--plot", str(png)).returncode == 0
    assert controller.json("report", "waste", "--since", "1h")["rows"] == []
    amort = controller.json("report", "amortization")
    assert amort["machines"][0]["node"] == "node-a"
    assert amort["machines"][0]["break_even_status"] in ("projected", "not at this utilization")

    for kind in ("utilization", "cost", "amortization", "waste"):
        png, page = tmp_path / f"{kind}.png", tmp_path / f"{kind}.html"
        args = ["report", kind] + ([] if kind == "amortization" else ["--since", "1h"])
        assert controller.cli(*args, "--plot", str(png)).returncode == 0
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
        assert controller.cli(*args, "--plot", str(page)).returncode == 0
        text = page.read_text()
        assert "<svg" in text and "<table>" in text and "<script" not in text
    whole = tmp_path / "report.html"
    r = controller.cli("report", "html", str(whole), "--since", "1h")
    assert r.returncode == 0, r.stderr
    text = whole.read_text()
    assert text.count("<svg") == 7 and "Amortization" in text and "short" in text
    assert "Cost by service" in text and "(jobs)" in text  # no service here: every job


def test_bad_report_input(controller: ControllerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for args, field in (
        (["report", "cost", "--by", "planet"], "--by"),
        (["report", "utilization", "--by", "month"], "--by"),
        (["report", "cost", "--since", "0d"], "--since"),
        (["report", "cost", "--from", "2026-13-01"], "--from"),
        (["report", "cost", "--from", "2026-05-02", "--to", "2026-05-01"], "--from"),
        (["report", "cost", "--plot", str(out / "x.gif")], "--plot"),
        (["report", "cost", "--plot", str(out / "nowhere" / "x.png")], "--plot"),
        (["report", "waste", "--min-idle", "soon"], "--min-idle"),
        (["report", "html", str(out / "x.png")], "FILE"),
    ):
        r = controller.cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and field in r.stderr, (args, r.stderr)
    assert not list(out.iterdir())
    rows = json.loads(controller.cli("report", "cost", "--json").stdout)["rows"]
    assert [r["kind"] for r in rows] == ["idle"]
