"""``clusterctl demo``: a self-contained tour on a simulated mixed fleet (a machine of 4 A100s
and a workstation of 4 RTX 4090s, two Ray nodes on this machine), in a temporary directory.

It uses the same parts as a real installation (a Ray head, the controller, HTTP, SQLite, the
shipped working directory) and touches nothing of the user's own configuration.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl import workdir
from clusterctl.cli.client import Client
from clusterctl.cli.common import console, gib, handles_errors, percent, watts
from clusterctl.cli.jobs import STATE_STYLE, gpus_asked, jobs_table, usage_table
from clusterctl.cli.nodes import gpu_table
from clusterctl.reports.documents import (
    AmortizationDocument,
    CostDocument,
    ReportDocument,
    UtilizationDocument,
    WasteDocument,
)
from clusterctl.settings import Settings
from clusterctl.states import ENDED, JobState

TRAIN = '''\
import os, sys, time
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
gpus = os.environ["CUDA_VISIBLE_DEVICES"]
print(f"job {os.environ['CLUSTERCTL_JOB_ID']} training on GPUs {gpus}", flush=True)
for step in range(1, steps + 1):
    end, x = time.time() + 1, 0
    while time.time() < end:  # a second of a step: computing (the simulated GPU shows it
        burst = time.process_time() + 0.02  # busy), waiting on data between bursts, and
        while time.process_time() < burst:  # gentle on the machine the demo runs on
            x += 1
        time.sleep(0.08)
    print(f"step {step}/{steps} loss {1.0 / step:.3f}", flush=True)
print("done", flush=True)
'''

FAIL = '''\
import sys
print("loading data...", flush=True)
print("error: dataset not found", file=sys.stderr, flush=True)
sys.exit(3)
'''

JOBS = [  # name, --gpus, script and arguments (run with this Python)
    ("train-a100", "A100:2", ["train.py", "8"]),
    ("train-any", "2", ["train.py", "6"]),
    ("eval-4090", "4090:1", ["train.py", "5"]),
    ("broken-data", "1", ["fail.py"]),
    ("waits-for-a100", "A100:4", ["train.py", "3"]),
]
HISTORY_JOBS = 17_000
"""Made-up jobs over the synthetic year: enough to keep the A100 machine about two-thirds
busy, as a team that bought it would."""
FLEET = [  # node suffix, GPUs, model, price, monthly fees
    ("a100-0", 4, "A100-80GB", "150000", "750"),
    ("rtx-4090-0", 4, "RTX-4090", "14000", "150"),
]


@handles_errors
def demo(keep: Annotated[bool, typer.Option(
        "--keep", help="Then leave the demo's cluster and its dashboard running until "
        "Ctrl-C.")] = False) -> None:
    """A self-contained tour: starts a simulated mixed fleet, runs sample jobs, exits."""
    from clusterctl.api.server import ApiServer  # see up(): slow imports
    from clusterctl.cli.local_agent import start_local_agent
    from clusterctl.controller.installation import local_user_name
    from clusterctl.controller.service import Controller
    from clusterctl.executor.local_ray import free_port, start_local_ray, start_local_worker

    with tempfile.TemporaryDirectory(prefix="clusterctl-demo-") as tmp:
        root = Path(tmp)
        console.print("[bold]clusterctl demo[/]: starting Ray on a simulated mixed fleet (4 "
                      "A100s and 4 RTX 4090s), the controller and SQLite in a temporary "
                      "directory…")
        settings = Settings(data_dir=str(root / "data"),
                            db_url=f"sqlite:///{root / 'data' / 'clusterctl.db'}",
                            port=free_port(), metrics_port=free_port(), kill_grace_s=5,
                            run_as_submitter=False)  # one person's machine: theirs
        host = socket.gethostname()
        names = [f"{host}-{suffix}" for suffix, *_ in FLEET]
        ray = start_local_ray(root / "data", num_gpus=FLEET[0][1], node_name=names[0],
                              gpu_model=FLEET[0][2], num_cpus=2)
        worker = start_local_worker(root / "data", ray, num_gpus=FLEET[1][1],
                                    node_name=names[1], gpu_model=FLEET[1][2], num_cpus=2)
        controller = Controller(settings, ray.address, str(ray.token_file))
        server = ApiServer(controller)
        agents = []
        try:
            controller.prepare()
            controller.wait_for_nodes(len(FLEET), 60)
            boot = controller.bootstrap_admin(None)
            server.serve_in_thread()
            assert boot.token is not None
            client = Client(f"http://127.0.0.1:{settings.port}", boot.token)
            bought = (datetime.now(timezone.utc) - timedelta(days=365)).date().isoformat()
            for node, (_, gpus, model, price, fees) in zip(names, FLEET, strict=True):
                agents.append(start_local_agent(
                    root / "data", controller_url=f"http://127.0.0.1:{settings.port}",
                    token=controller.users.issue_node_token(node, local_user_name()),
                    node=node,
                    simulate_gpus=gpus, simulate_model=model, port=free_port(),
                    interval="1s", directory=f"agent-{node}"))
                client.json("POST", "/v1/hardware", json={
                    "node": node, "gpus": gpus, "gpu_model": model, "price": price,
                    "purchased": bought, "life_months": "36", "resale": "0.2",
                    "monthly_fees": fees})
            _ownership(client, controller.engine, names)
            _tour(client, root)
            controller.housekeeper.run_once()  # roll the samples up now, not in a minute
            _reports(client)
            if keep:
                _keep(settings.port, boot.token)
        finally:
            for agent in agents:
                agent.stop()
            server.stop()
            worker.stop()
            ray.stop()


def _keep(port: int, token: str) -> None:
    """The demo's cluster stays up for a look in the browser (its token is the demo's own
    admin's, in its temporary database: gone with it)."""
    console.print(f"\n[bold]The dashboard[/]: http://127.0.0.1:{port}/ — sign in with the "
                  f"demo admin's token {token}\nThe demo's cluster keeps running; Ctrl-C ends "
                  "it.", highlight=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping the demo's cluster…")


def _ownership(c: Client, engine: Any, names: list[str]) -> None:
    """A synthetic year on the demo's machines, so that the ownership reports and ``plan``
    have something to say at once: it goes into the demo's own temporary database only, and
    every job of it is named ``synthetic-N``."""
    from clusterctl.cli import report
    from clusterctl.cli.demo_history import SyntheticNode, load_history
    from clusterctl.cli.plan import print_plan, read_cluster, run_plan

    now = datetime.now(timezone.utc)
    nodes = [SyntheticNode(name, gpus) for name, (_, gpus, *_) in zip(names, FLEET, strict=True)]
    made = load_history(engine, nodes, now - timedelta(days=365), now - timedelta(hours=2),
                        HISTORY_JOBS, sizes=(1, 1, 1, 2, 2, 4), idle_share=0.05)
    console.print(f"\n[bold]The ownership story[/] on a [bold]synthetic[/] year: "
                  f"{made['jobs']:,.0f} made-up jobs (named synthetic-N) loaded into the "
                  f"demo's temporary database, {made['allocated_share']:.0%} of the GPU-hours "
                  "held. Your real reports hold only real jobs.")
    data = report.fetch(c, AmortizationDocument)
    console.print("\n[bold]$ clusterctl report amortization[/]")
    console.print(report.rich_table(report.amortization_columns(data)))
    waste = report.fetch(c, WasteDocument, since="30d")
    console.print("\n[bold]$ clusterctl report waste --since 30d[/]  (the five worst)")
    console.print(report.rich_table(report.waste_columns(
        waste.model_copy(update={"rows": waste.rows[:5]}))))
    console.print("\n[bold]$ clusterctl plan --add 1x4:A100-80GB@150000[/]  (the last 90 "
                  "days replayed through the scheduler, with and without one more machine)")
    history = read_cluster(c, 90 * 86400, now)
    print_plan(run_plan(c, history, fleet=None, add=["1x4:A100-80GB@150000"], remove=[],
                        quota=[]))


def _tour(c: Client, root: Path) -> None:
    work = root / "work"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    (work / "fail.py").write_text(FAIL)
    package = c.upload_package(workdir.pack(work, 10 << 20))
    ids = []
    for name, gpus, script in JOBS:
        command = [sys.executable, *script]
        job = c.submit({"name": name, "gpus": gpus, "command": command, "package": package,
                        "time_limit": "10m"})
        ids.append(job["id"])
        console.print(f"  $ clusterctl submit --gpus {gpus} --name {name} -- "
                      f"python {' '.join(script)}   → job {job['id']}")
    deadline = time.monotonic() + 15  # the first table shows where each went, or why it waits
    while time.monotonic() < deadline and not all(
            r["state"] != "PENDING" or r.get("wait_reason") for r in map(c.job, ids)):
        time.sleep(0.3)
    shown = 0.0
    nodes_shown = False
    while True:
        rows = [c.job(i) for i in ids]
        if all(JobState(r["state"]) in ENDED for r in rows):
            break
        if time.monotonic() - shown > 4:
            console.print("\n[bold]$ clusterctl jobs[/]")
            console.print(jobs_table([r for r in rows if JobState(r["state"]) not in ENDED]))
            shown = time.monotonic()
            if not nodes_shown and sum(r["state"] == "RUNNING" for r in rows) >= 2:
                console.print("\n[bold]$ clusterctl nodes[/]  (live, from the GPU agent)")
                console.print(gpu_table(c.nodes()))
                nodes_shown = True
        time.sleep(0.5)
    rows = _measured(c, ids)
    console.print("\n[bold]Outcomes[/]")
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "NAME", "GPUS", "STATE", "REASON", "GPUs HELD"):
        table.add_column(col)
    for r in rows:
        held = ",".join(f"{a['node']}:{a['gpu_index']}" for a in r["allocations"])
        table.add_row(str(r["id"]), r["name"], gpus_asked(r),
                      f"[{STATE_STYLE[r['state']]}]{r['state']}[/]", r["reason"] or "", held)
    console.print(table)
    for r in rows:
        if r["state"] == "FAILED":
            data, _, _ = c.logs(r["id"], 0)
            console.print(f"\n[bold]$ clusterctl logs {r['id']}[/]")
            console.print(textwrap.indent(data.decode(errors="replace"), "  "), markup=False)
    for r in rows:
        if r["state"] == "SUCCEEDED" and r["gpus"] >= 2 and r.get("usage"):
            console.print(f"\n[bold]$ clusterctl show {r['id']}[/]  (usage part)")
            console.print(usage_table(r["usage"]))
            break
    console.print("\n[bold]Usage per job[/] (measured by the agent; coverage is the share of "
                  "the time held that samples cover)")
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "NAME", "GPUS", "UTIL", "PEAK MEM GiB", "POWER", "ENERGY kWh", "COVERAGE"):
        table.add_column(col, justify="left" if col == "NAME" else "right")
    for r in rows:
        u = r.get("usage")
        if not u:
            continue
        table.add_row(str(r["id"]), r["name"], gpus_asked(r), percent(u["avg_utilization"]),
                      gib(u["peak_memory_bytes"]), watts(u["avg_power_watts"]),
                      "-" if u["energy_kwh"] is None else f"{u['energy_kwh']:.4f}",
                      percent(u["coverage"]))
    console.print(table)


def _measured(c: Client, ids: list[int], timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """The jobs once the agent's samples cover the whole time each held its GPUs (its next
    read after a job ends carries the energy used up to the end), or as they are at the
    timeout: the table then shows the coverage it got."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [c.job(i) for i in ids]
        if all(r.get("usage") and r["usage"]["coverage"] >= 0.995 for r in rows
               if r["allocations"]) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _reports(c: Client) -> None:
    from clusterctl.cli import report

    shown: list[tuple[str, type[ReportDocument], dict[str, str]]] = [
        ("report utilization --since 1h --by job", UtilizationDocument,
         {"since": "1h", "by": "job"}),
        ("report cost --since 1h --by job", CostDocument, {"since": "1h", "by": "job"}),
        ("report cost --since 1h --by gpu-type", CostDocument,
         {"since": "1h", "by": "gpu-type"}),
        ("report amortization", AmortizationDocument, {}),
    ]
    for title, document, query in shown:
        data: ReportDocument = report.fetch(c, document, **query)
        console.print(f"\n[bold]$ clusterctl {title}[/]")
        console.print(report.rich_table(report.columns(data)))
    console.print("\nThe demo machines are priced as a 4x A100-80GB bought a year ago for "
                  "$150,000 and a 4x RTX 4090 workstation for $14,000 (`clusterctl hardware "
                  "list`); the year of use the amortization report counts is the synthetic "
                  "one above. Try `clusterctl report html report.html` and `clusterctl plan` "
                  "on your cluster.")
