"""``clusterctl plan`` (#20): figures against hand computations on a tiny history, Slurm's
sacct output read as a history, and the command's answers and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clusterctl.cost.rates import effective_rates
from clusterctl.parsing import BadInput
from clusterctl.plan import fleet, sacct
from clusterctl.plan.scenarios import Site, advice, evaluate_all, grow, propose
from clusterctl.scheduler.records import PolicyConfig, guarded
from clusterctl.scheduler.records import from_settings as cluster_policy
from clusterctl.simulate.trace import PastJob, read_csv

TODAY = date(2026, 12, 1)
# Five 1-GPU jobs of one hour, all submitted at once, on two 1-GPU A100-80GB machines bought
# for $73,050 over 10 months with no resale ($7,305 a month each) and $730.50 of fees a month.
TINY = "submit_s,duration_s,num_gpus,team,time_limit_s\n" + "0,3600,1,a,3600\n" * 5
MACHINE = "A100-80GB@73050/10mo/0/730.5"
SITE = Site(Decimal("0.10"), Decimal("1.0"), effective_rates({}))  # $0.10/kWh, PUE 1


def tiny(tmp_path: Path) -> list[PastJob]:
    f = tmp_path / "tiny.csv"
    f.write_text(TINY)
    return read_csv(f).jobs


def test_plan_figures_match_a_hand_computation(tmp_path: Path) -> None:
    d = fleet.Defaults()
    current = fleet.parse_machines(f"2x1:{MACHINE}", "--fleet", d, prefix="node-")
    new = fleet.parse_machines(f"1x1:{MACHINE}", "--add", d, prefix="new-")
    sale = fleet.parse_removal("node-2@30000", current, TODAY)
    scenarios = propose(current, purchases=[("1x1:A100-80GB", new)], sales=[sale])
    now, add, sell = evaluate_all(tiny(tmp_path), scenarios, SITE, TODAY)

    # Two GPUs: starts at 0, 0, 1 h, 1 h, 2 h; the span is 3 h, 5 GPU-hours held.
    assert (now.avg_wait_s, now.p50_wait_s) == (2880, 3600)
    assert now.p95_wait_s == pytest.approx(6480)  # 3600 + 0.8 x 3600, linear percentile
    assert now.utilization == pytest.approx(5 / 6)
    assert now.gpu_hours == pytest.approx(5)
    # A month is 730.5 h, so 3 h of history are 3/730.5 month: one machine busy throughout
    # (730.5 GPU-h a month), the other 2 h of 3 (487 GPU-h busy, 243.5 idle). Energy: busy at
    # the A100's 400 W, idle at 15 % of it (60 W): (1217.5 x 0.4 + 243.5 x 0.06) kWh x $0.10.
    energy = (1217.5 * 0.4 + 243.5 * 0.06) * 0.10
    assert now.monthly_cost == pytest.approx(2 * 7305 + 2 * 730.5 + energy)
    assert energy == pytest.approx(50.161)
    assert now.cost_per_used_gpu_hour == pytest.approx(now.monthly_cost / 1217.5)
    assert now.cloud_cost_per_month == pytest.approx(1217.5 * 5.12)  # A100-80GB on demand

    # Three GPUs: starts at 0, 0, 0, 1 h, 1 h (the two left go to the first machines).
    assert (add.avg_wait_s, add.p50_wait_s, add.gpus) == (1440, 0, 3)
    months = 2 / 730.5
    assert add.monthly_cost == pytest.approx(
        3 * 7305 + 3 * 730.5 + ((5 / months) * 0.4 + (3 * 730.5 - 5 / months) * 0.06) * 0.10)
    # The new machine served 1 GPU-hour in 2 h: 365.25 a month, worth 365.25 x $5.12 rented;
    # it costs its fees and energy to run; its price over the difference is the break-even.
    served = 1 / months
    running = 730.5 + (served * 0.4 + (730.5 - served) * 0.06) * 0.10
    assert add.break_even_months == pytest.approx(73050 / (served * 5.12 - running))
    assert add.wait_added_s == pytest.approx(-1440)

    # One GPU: waits 0, 1, 2, 3, 4 h; the sale brings what was asked.
    assert sell.avg_wait_s == 7200 and sell.sale_cash == 30000
    assert sell.monthly_cost_change == pytest.approx(sell.monthly_cost - now.monthly_cost)

    words = advice(scenarios, [now, add, sell])
    assert words[0] == ("adding 1x1:A100-80GB cuts the average wait from 48 min to 24 min for "
                        f"${add.monthly_cost - now.monthly_cost:,.0f} a month more; against "
                        "renting the same GPU-hours it pays for itself in 65 months.")
    assert words[1].startswith("selling node-2 frees $30,000 and $")
    assert words[1].endswith("raises the average wait from 48 min to 2.0 h.")


def test_a_purchase_renting_beats_is_said_so(tmp_path: Path) -> None:
    """A machine whose GPU-hours would cost less rented than its own fees and power never pays
    for itself: no break-even, and the advice says renting is cheaper."""
    d = fleet.Defaults()
    current = fleet.parse_machines("1x1:A100-80GB@73050", "--fleet", d, prefix="node-")
    costly = fleet.parse_machines("1x1:T4@50000/36mo/0/9000", "--add", d, prefix="new-")
    scenarios = propose(current, purchases=[("1x1:T4", costly)])
    results = evaluate_all(tiny(tmp_path), scenarios, SITE, TODAY)
    assert results[1].break_even_months is None
    assert "renting the overflow is cheaper" in advice(scenarios, results)[0]


def test_growth_replays_more_jobs_and_proposals_at_that_growth(tmp_path: Path) -> None:
    jobs = tiny(tmp_path)
    assert len(grow(jobs, 2.0)) == 10 and len(grow(jobs, 1.0)) == 5
    assert 5 <= len(grow(jobs * 40, 1.5)) // 40 * 40 <= 400
    d = fleet.Defaults()
    current = fleet.parse_machines(f"2x1:{MACHINE}", "--fleet", d, prefix="node-")
    new = fleet.parse_machines(f"1x1:{MACHINE}", "--add", d, prefix="new-")
    scenarios = propose(current, purchases=[("1x1", new)], growth=2.0)
    assert [s.kind for s in scenarios] == ["current", "growth", "add"]
    now, grown, add = evaluate_all(jobs, scenarios, SITE, TODAY)
    assert (now.jobs, grown.jobs, add.jobs) == (5, 10, 10)
    assert add.wait_added_s == pytest.approx(add.avg_wait_s - grown.avg_wait_s)
    assert any(w.startswith("with 2x the jobs") for w in advice(scenarios,
                                                                 [now, grown, add]))


def test_machine_specs_and_their_refusals() -> None:
    d = fleet.Defaults(life_months=48, resale=Decimal("0.1"), fees_per_gpu=Decimal(100))
    [m] = fleet.parse_machines("1x8:H100-80GB@280,000", "--add", d, prefix="new-")
    assert (m.price, m.life_months, m.resale, m.monthly_fees, m.gpu_model) == \
        (Decimal(280000), 48, Decimal("0.1"), Decimal(800), "H100-80GB")
    [m] = fleet.parse_machines("1x8:H100@280000/3y/0.25/1200", "--add", d, prefix="new-")
    assert (m.life_months, m.resale, m.monthly_fees) == (36, Decimal("0.25"), Decimal(1200))
    [typical] = fleet.parse_machines("1x4:RTX-4090", "--fleet", d, prefix="n")
    assert typical.price == 4 * fleet.TYPICAL_PRICE_PER_GPU["RTX4090"] and typical.typical
    [unknown] = fleet.parse_machines("1x4", "--fleet", d, prefix="n")
    assert unknown.price is None
    for spec, field in (("2x8:", "--add"), ("2x8:H100@", "--add @PRICE"),
                        ("2x8:H100@-5", "--add @PRICE"), ("2x8:H100@$", "--add @PRICE"),
                        ("2x8:H100@280000/0mo", "--add /LIFE"),
                        ("2x8:H100@280000/36mo/2", "--add /RESALE"), ("eight", "--add")):
        with pytest.raises(BadInput) as e:
            fleet.parse_machines(spec, "--add", d, prefix="n")
        assert e.value.field == field, spec
    machines = fleet.parse_machines("2x1:A100", "--fleet", d, prefix="node-")
    with pytest.raises(BadInput) as e:
        fleet.parse_removal("node-9", machines, TODAY)
    assert e.value.field == "--remove" and "node-1, node-2" in str(e.value)


def test_measured_power_replaces_the_typical_one_by_model() -> None:
    d = fleet.Defaults()
    machines = fleet.parse_machines("1x8:A100-80GB,1x4:RTX-4090", "--fleet", d, prefix="n")
    assert [m.busy_power_w() for m in machines] == [400, 450]  # typical board power
    measured = fleet.with_power(machines, {"A100-80GB": 312.5})
    assert [m.busy_power_w() for m in measured] == [312.5, 450]


def test_an_inventory_machine_is_sold_at_its_book_value_unless_priced() -> None:
    from clusterctl.cost.inventory import HardwareSpec

    spec = HardwareSpec("old", 8, "A100-80GB", Decimal(146100), date(2025, 12, 1), 20,
                        Decimal(0), Decimal(500))
    [m] = fleet.from_inventory([spec], TODAY)
    sale = fleet.parse_removal("old", [m], TODAY)
    # 365 days of a 20-month life (14,610 h): 8,760 h of $10/h depreciation.
    assert sale.price == pytest.approx(Decimal(146100) - Decimal(87600), abs=Decimal("0.01"))
    assert m.monthly_depreciation(TODAY) == Decimal(7305)
    assert m.monthly_depreciation(date(2027, 9, 1)) == 0  # written off
    assert fleet.defaults_from([spec]).fees_per_gpu == Decimal("62.5")


# -- sacct ------------------------------------------------------------------------------------

SACCT = """JobID|User|Account|Submit|Start|End|State|AllocTRES|NNodes|Timelimit
100|ana|vision|2024-03-01T10:00:00|2024-03-01T10:05:00|2024-03-01T12:05:00|COMPLETED|billing=8,cpu=8,gres/gpu=2,mem=64G,node=1|1|04:00:00
100.batch|||2024-03-01T10:05:00|2024-03-01T10:05:00|2024-03-01T12:05:00|COMPLETED|cpu=8,gres/gpu=2,mem=64G,node=1|1|
100.0|||2024-03-01T10:05:00|2024-03-01T10:05:00|2024-03-01T12:05:00|COMPLETED|cpu=8,gres/gpu=2|1|
101_3|bo|nlp|2024-03-01T11:00:00|2024-03-01T11:00:00|2024-03-02T11:00:00|TIMEOUT|cpu=64,gres/gpu=16,gres/gpu:a100=16,node=2|2|1-00:00:00
101_[4-9]|bo|nlp|2024-03-01T11:00:00|Unknown|Unknown|PENDING||1|1-00:00:00
102|cy|nlp|2024-03-01T12:00:00+01:00|2024-03-01T12:30:00+01:00|2024-03-01T13:00:00+01:00|FAILED|cpu=4,gres/gpu:h100=1,node=1|1|30:00
103|cy|nlp|2024-03-01T13:00:00|None|2024-03-01T13:10:00|CANCELLED by 0|cpu=4,gres/gpu=1|1|UNLIMITED
104|di|vision|2024-03-01T14:00:00|2024-03-01T14:00:00|Unknown|RUNNING|cpu=4,gres/gpu=1,node=1|1|2-00:00
105|di|vision|2024-03-01T15:00:00|2024-03-01T15:00:00|2024-03-01T15:30:00|COMPLETED|cpu=4,mem=8G,node=1|1|01:00:00
106|di|vision|yesterday|2024-03-01T15:00:00|2024-03-01T15:30:00|COMPLETED|cpu=4,gres/gpu=1|1|01:00:00
107|di|vision|2024-03-01T16:00:00
108||vision|2024-03-01T17:00:00|2024-03-01T17:00:00|2024-03-01T17:20:00|COMPLETED|cpu=4,gres/gpu=1|1|UNLIMITED
"""


def test_sacct_output_read_as_a_history() -> None:
    got = sacct.read(SACCT.splitlines(), tz=ZoneInfo("Europe/Paris"), seed=3)
    assert [(j.team, j.user, j.num_gpus, j.gpu_type, j.duration_s, j.time_limit_s)
            for j in got.jobs[:3]] == [
        ("vision", "ana", 2, None, 7200, 4 * 3600),     # its steps are not jobs
        ("nlp", "bo", 16, "a100", 86400, 86400),        # an array task; typed gres preferred
        ("nlp", "cy", 1, "h100", 1800, 1800),           # its own offset; Timelimit MM:SS
    ]
    first = got.jobs[0]
    # Naive times are Paris time: 10:00 in March is 09:00 UTC.
    assert first.submit_s == datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc).timestamp()
    assert got.jobs[2].submit_s == datetime(2024, 3, 1, 11, 0, tzinfo=timezone.utc).timestamp()
    unlimited = got.jobs[3]  # no user: its account; UNLIMITED: duration x 1 to 3, whole minutes
    assert (unlimited.team, unlimited.user) == ("vision", "")
    assert 1200 <= unlimited.time_limit_s <= 3600 and unlimited.time_limit_s % 60 == 0
    assert len(got.jobs) == 4
    assert got.skipped == {"job step": 2, "never started": 2, "still running": 1, "no GPUs": 1}
    assert got.unparsed == 2
    assert got.first_unparsed is not None and got.first_unparsed.startswith("line 11:")


def test_sacct_time_limits_and_tres() -> None:
    assert [sacct.timelimit_s(t) for t in ("30", "30:00", "02:00:00", "1-00:00:00", "1-12",
                                           "1-12:30", "UNLIMITED", "Partition_Limit", "")] == \
        [1800, 1800, 7200, 86400, 129600, 131400, None, None, None]
    assert sacct.gpus_of("cpu=4,gres/gpu=2,mem=8G") == (2, None)
    assert sacct.gpus_of("gres/gpu=4,gres/gpu:a100=4") == (4, "a100")
    assert sacct.gpus_of("cpu=4,gres/gpumem=40G") == (0, None)
    with pytest.raises(BadInput) as e:
        sacct.read(["JobID|User|Submit|Start|End"])
    assert e.value.field == "--trace" and "AllocTRES or ReqTRES" in str(e.value)


# -- the command --------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "CLUSTERCTL_URL": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "clusterctl", "plan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_plan_command_offline_on_a_sacct_file(tmp_path: Path) -> None:
    f = tmp_path / "sacct.txt"
    f.write_text(SACCT)
    r = cli("--trace", str(f), "--fleet", "2x8:A100-80GB@150000", "--add",
            "1x8:H100-80GB@280000", "--remove", "node-2@60000", "--json",
            "--plot", str(tmp_path / "plan.html"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["scenario"] for s in out["scenarios"]] == [
        "current fleet", "adding 1x8:H100-80GB", "selling node-2"]
    for s in out["scenarios"]:
        assert {"jobs", "avg_wait_s", "p50_wait_s", "p95_wait_s", "utilization", "gpu_hours",
                "monthly_cost", "cost_per_used_gpu_hour", "cloud_cost_per_month",
                "break_even_months"} <= s.keys()
    assert out["scenarios"][2]["sale_cash"] == 60000
    assert out["history"]["jobs"] == 4
    assert any("did not parse" in n for n in out["history"]["notes"])
    assert len(out["advice"]) == 2
    assert "<svg" in (tmp_path / "plan.html").read_text()


@pytest.mark.parametrize(("args", "field"), [
    (("--fleet", "2x8:"), "--fleet"),
    (("--fleet", "2x8:A100", "--add", "1x8:H100@lots"), "--add @PRICE"),
    (("--fleet", "2x8:A100", "--growth", "0"), "--growth"),
    (("--fleet", "2x8:A100", "--growth", "many"), "--growth"),
    (("--fleet", "2x8:A100", "--remove", "node-7"), "--remove"),
    (("--fleet", "2x8:A100", "--tz", "Mars/Olympus"), "--tz"),
    (("--fleet", "2x8:A100", "--quota", "vision=lots"), "--quota"),
])
def test_bad_input_names_the_field_and_writes_nothing(tmp_path: Path, args: tuple[str, ...],
                                                      field: str) -> None:
    f = tmp_path / "sacct.txt"
    f.write_text(SACCT)
    plot = tmp_path / "plan.png"
    r = cli("--trace", str(f), *args, "--plot", str(plot), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and field in r.stderr, r.stderr
    assert not plot.exists()


def test_a_file_with_no_gpu_job_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "cpu.txt"
    f.write_text(SACCT.splitlines()[0] + "\n"
                 "1|ana|a|2024-03-01T10:00:00|2024-03-01T10:00:00|2024-03-01T11:00:00|"
                 "COMPLETED|cpu=4|1|01:00:00\n")
    r = cli("--trace", str(f), "--fleet", "1x8:A100", cwd=tmp_path)
    assert r.returncode == 2 and "--trace" in r.stderr and "no GPU job" in r.stderr


def test_the_replays_run_with_the_clusters_scheduling_settings(tmp_path: Path) -> None:
    """`plan` replays a cluster's history as its controller schedules (``/v1/quotas``'
    ``policy``): its order (``guarded``, a starvation guard) and its limits, here one GPU per
    user, which makes the five jobs of one user run one after another."""
    policy = cluster_policy({"scheduling_policy": "guarded", "starve_after_s": 7200.0,
                             "preempt": False, "preempt_grace_s": 5.0,
                             "preempt_min_run_s": 0.0, "user_gpu_limit": 1})
    assert policy == PolicyConfig(**{**vars(guarded(PolicyConfig())), "starve_after_s": 7200.0,
                                     "preempt": False, "preempt_grace_s": 5.0,
                                     "preempt_min_run_s": 0.0, "user_gpu_limit": 1})
    assert cluster_policy({}) == PolicyConfig()  # a controller older than the field
    d = fleet.Defaults()
    scenarios = propose(fleet.parse_machines(f"2x1:{MACHINE}", "--fleet", d, prefix="node-"),
                        purchases=[], sales=[])
    [free] = evaluate_all(tiny(tmp_path), scenarios, SITE, TODAY)
    [limited] = evaluate_all(tiny(tmp_path), scenarios, SITE, TODAY, policy=policy)
    assert free.avg_wait_s == 2880  # two at a time (the hand computation above)
    assert limited.avg_wait_s == (0 + 1 + 2 + 3 + 4) * 3600 / 5  # one at a time
