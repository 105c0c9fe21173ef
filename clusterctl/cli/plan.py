"""``clusterctl plan``: should we buy another machine, sell one, or change the quotas? The
team's own history replayed through the live policy on the current fleet and on each proposal,
and each priced.

The history is the cluster's job records (``--since``), or a file (``--trace``): the
simulator's CSV or Slurm's ``sacct --parsable2`` output. With a file and ``--fleet`` it runs
offline; otherwise it asks the controller for the inventory (and the site's tariff and cloud
rates)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from clusterctl.cli.client import ApiError, Client
from clusterctl.cli.common import client, console, err_console, handles_errors, print_json
from clusterctl.cli.report import check_plot, fetch, plots
from clusterctl.cli.simulate import Overestimate
from clusterctl.cost.inventory import HardwareSpec, SiteSettings
from clusterctl.cost.rates import CloudRate, effective_rates
from clusterctl.parsing import BadInput, parse_duration
from clusterctl.plan import fleet as fleet_mod
from clusterctl.plan import sacct
from clusterctl.plan.scenarios import (
    Quotas,
    Result,
    Site,
    advice,
    duration,
    evaluate_all,
    money,
    propose,
)
from clusterctl.reports.documents import CostDocument
from clusterctl.scheduler.quotas import parse_quotas
from clusterctl.scheduler.records import PolicyConfig, from_settings
from clusterctl.simulate import rows
from clusterctl.simulate import trace as trace_mod
from clusterctl.simulate.trace import PastJob, parse_overestimate

MAX_GROWTH = 20.0


@dataclass
class History:
    jobs: list[PastJob]
    source: str
    notes: list[str] = field(default_factory=list)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput("--tz", f"{tz!r} is not a time zone name such as UTC or "
                               "Europe/Paris") from None


def read_trace(path: Path, tz: str, overestimate: tuple[float, float], seed: int) -> History:
    """A history file, sacct's or the simulator's CSV (``simulate/rows.py``: bounded reading,
    bad rows counted)."""
    try:
        with rows.open_history(path) as f:
            first = f.readline(rows.MAX_LINE_BYTES)
            if sacct.looks_like_sacct(first):
                f.seek(0)
                got = sacct.read(f, tz=_zone(tz), overestimate=overestimate, seed=seed)
                notes = [f"{n} {why} left out" for why, n in sorted(got.skipped.items())]
                return History(got.jobs, f"{path} (sacct)", notes + got.rows.note())
    except rows.HistoryError as e:
        raise BadInput("--trace", str(e)) from None
    try:
        read = trace_mod.read_csv(path, overestimate=overestimate, seed=seed)
    except trace_mod.TraceError as e:
        raise BadInput("--trace", str(e)) from None
    return History(read.jobs, str(path), read.rows.note())


def read_cluster(c: Client, since_s: int, now: datetime) -> History:
    """The cluster's jobs submitted in the window that ran to an end, and the running
    replicas of services up to ``now``."""
    after = (now - timedelta(seconds=since_s)).isoformat()
    rows: list[dict[str, Any]] = []
    before = None
    while True:  # newest first in pages of the API's largest
        page, total = c.jobs_page(all=True, since=after, limit=100_000, before=before)
        rows += page
        if not page or len(rows) >= total:
            break
        before = min(r["id"] for r in page)
    jobs = []
    for r in rows:
        # A service's replica runs until it is stopped: its hours so far count, as a job's.
        ongoing = r.get("service_id") is not None and r.get("state") == "RUNNING"
        if not (r.get("started_at") and (r.get("ended_at") or ongoing)):
            continue
        submit = datetime.fromisoformat(r["submitted_at"])
        start = datetime.fromisoformat(r["started_at"])
        end = datetime.fromisoformat(r["ended_at"]) if r.get("ended_at") else now
        run = max(0.0, (end - start).total_seconds())
        types = r.get("gpu_types") or []
        jobs.append(PastJob(submit.timestamp(), run, r["gpus"] * r["nodes"], r["team"],
                            r["user"], float(r["time_limit_s"] or trace_mod.limit_for(run, 2)),
                            types[0] if types else None))
    jobs.sort(key=lambda j: j.submit_s)
    return History(jobs, f"the cluster's jobs of the last {since_s // 86400} days")


def _growth(text: str | None) -> float:
    if text is None:
        return 1.0
    try:
        g = float(text)
    except ValueError:
        g = float("nan")
    if not 0 < g <= MAX_GROWTH:
        raise BadInput("--growth", f"{text!r} is not a factor above 0 and at most "
                                   f"{MAX_GROWTH:g} (1.5: half as many jobs again)")
    return g


@handles_errors
def plan(
    since: Annotated[str, typer.Option(
        help="History: the cluster's jobs of this last period (90d, 2w as 14d).")] = "90d",
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="History from a file: the simulator's CSV, or `sacct --parsable2` "
                        "output (JobID, User, Account, Submit, Start, End, State, AllocTRES, "
                        "NNodes, Timelimit).")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of sacct's times.")] = "UTC",
    fleet: Annotated[str | None, typer.Option(
        help="The fleet instead of the inventory: 8x8:A100-80GB,2x8:H100-80GB[@PRICE/LIFE/"
             "RESALE/FEES].")] = None,
    add: Annotated[list[str] | None, typer.Option(
        help="A purchase, one scenario each: 2x8:H100-80GB@280000[/36mo/0.25/1200] (price "
             "per machine; fees a month).")] = None,
    remove: Annotated[list[str] | None, typer.Option(
        help="A sale, one scenario each: NODE[@SALE_PRICE] (else its book value).")] = None,
    quota: Annotated[list[str] | None, typer.Option(
        help="Quotas for one more scenario: TEAM=GPUS or TEAM=TYPE:GPUS+TYPE:GPUS.")] = None,
    growth: Annotated[str | None, typer.Option(
        help="Replay with this many times the jobs (1.5), to plan ahead.")] = None,
    overestimate: Overestimate = "1-3",
    seed: int = 0,
    json_: Annotated[bool, typer.Option("--json")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Wait-time CDFs and monthly cost side by side: FILE.png or FILE.html")]
        = None,
) -> None:
    """Replay the history on the current fleet and on each proposal; price each; advise."""
    check_plot(plot)
    g = _growth(growth)
    limits = parse_overestimate(overestimate)
    window = parse_duration(since, "--since")
    quotas = parse_quotas(quota) if quota else None
    offline = trace is not None and fleet is not None
    if trace is not None:
        history = read_trace(trace, tz, limits, seed)
        if not any(j.num_gpus > 0 for j in history.jobs):
            raise BadInput("--trace", f"{history.source} holds no GPU job that ran")
    c = None if offline else client()
    if trace is None:
        assert c is not None
        history = read_cluster(c, window, datetime.now(timezone.utc))
    out = run_plan(c, history, fleet=fleet, add=add or [], remove=remove or [],
                   quota=quota or [], quotas=quotas, growth=g, since_s=window)
    results, words, notes = out.results, out.advice, out.notes
    if plot is not None:
        plots().write_plan(results, plot)
    if json_:
        print_json({"history": {"source": history.source, "jobs": len(history.jobs),
                                "notes": notes},
                    "scenarios": [r.as_json() for r in results], "advice": words})
        return
    print_plan(out)
    if plot is not None:
        console.print(f"chart written to {plot}")


@dataclass
class PlanOutcome:
    history: History
    results: list[Result]
    advice: list[str]
    notes: list[str]
    currency: str


def run_plan(c: Client | None, history: History, *, fleet: str | None, add: list[str],
             remove: list[str], quota: list[str],
             quotas: tuple[dict[str, float], dict[str, dict[str, float]]] | None = None,
             growth: float = 1.0, since_s: int = 90 * 86400) -> PlanOutcome:
    """The scenarios replayed and priced: on the inventory and the site's prices where ``c``
    reaches a controller, else on ``fleet`` at the default prices."""
    if not any(j.num_gpus > 0 for j in history.jobs):
        raise BadInput("--since", f"{history.source} holds no GPU job that ran")
    today = datetime.now(timezone.utc).date()
    inventory, site, live = ([], _default_site(), []) if c is None else \
        _cluster_facts(c, fleet)
    defaults = fleet_mod.defaults_from(inventory)
    if fleet is not None:
        current = fleet_mod.parse_machines(fleet, "--fleet", defaults, prefix="node-")
    else:
        current = _inventory_fleet(inventory, live, today)
    purchases = [(text.split("@")[0], fleet_mod.parse_machines(
        text, "--add", defaults, prefix="new-", first=i * 1000)) for i, text in enumerate(add)]
    notes = list(history.notes)
    base: Quotas = ({}, {})
    policy = PolicyConfig()
    if c is not None:
        q = c.json("GET", "/v1/quotas")
        base = (q["quotas"], q["type_quotas"])
        if q["quotas"] or q["type_quotas"]:
            notes.append("replayed with the cluster's quotas (`--quota` proposes others)")
        policy = from_settings(q.get("policy") or {})  # older controllers: none
        if policy != PolicyConfig():
            notes.append("replayed with the cluster's scheduling settings "
                         f"({_settings_said(q['policy'])})")
        power = measured_power(c, since_s)
        if power:
            current = fleet_mod.with_power(current, power)
            purchases = [(text, fleet_mod.with_power(ms, power)) for text, ms in purchases]
            notes.append("power measured on the cluster while GPUs were held: " + ", ".join(
                f"{model} {watts:.0f} W" for model, watts in sorted(power.items())))
    sales = [fleet_mod.parse_removal(r, current, today) for r in remove]
    scenarios = propose(current, purchases=purchases, sales=sales, quotas=quotas,
                        quota_text=",".join(quota), growth=growth, base=base)
    results = evaluate_all(history.jobs, scenarios, site, today,
                           workers=os.cpu_count() or 1, policy=policy)
    return PlanOutcome(history, results, advice(scenarios, results, site.currency),
                       notes + _price_notes(results), site.currency)


def _settings_said(settings: dict[str, Any]) -> str:
    """Those of the cluster's settings that change the pass, for the plan's notes."""
    return ", ".join(f"{k} {v}" for k, v in settings.items()
                     if from_settings({k: v}) != PolicyConfig())


def measured_power(c: Client, since_s: int) -> dict[str, float]:
    """Each GPU model's average board power while jobs held its GPUs, from the cost report by
    GPU type (energy measured over GPU-hours held): the busy power a plan prices energy at,
    where the cluster has measured it."""
    days = max(1, min(365, since_s // 86400))
    data = fetch(c, CostDocument, by="gpu-type", since=f"{days}d")
    return {r.key: r.energy_kwh * 1000 / r.gpu_hours for r in data.rows
            if r.kind == "gpu-type" and r.gpu_hours and r.energy_kwh and r.key != "unknown"}


def _default_site() -> Site:
    d = SiteSettings()
    return Site(d.tariff_per_kwh, d.pue, effective_rates({}), d.currency)


def _cluster_facts(c: Client, fleet: str | None
                   ) -> tuple[list[HardwareSpec], Site, list[dict[str, Any]]]:
    """The inventory, the site's energy price and cloud rates, and the live nodes."""
    try:
        machines = [HardwareSpec.from_json(m) for m in c.json("GET", "/v1/hardware")]
        settings = c.json("GET", "/v1/cost/settings")
        live = c.nodes() if fleet is None else []
    except ApiError as e:
        if fleet is None:
            raise BadInput("--fleet", f"the inventory is not reachable ({e}); give the fleet "
                                      "with --fleet 8x8:A100-80GB,...") from None
        raise
    overrides = {r["gpu_model"]: CloudRate(r["gpu_model"], Decimal(r["per_gpu_hour"]),
                                           r["source"]) for r in settings["rates"]}
    site = Site(Decimal(settings["tariff_per_kwh"]), Decimal(settings["pue"]),
                effective_rates(overrides), settings.get("currency", "USD"))
    return machines, site, live


def _inventory_fleet(inventory: list[HardwareSpec], live: list[dict[str, Any]], today: date
                     ) -> list[fleet_mod.PlanMachine]:
    machines = fleet_mod.from_inventory(inventory, today)
    known = {m.name for m in machines}
    for n in live:  # a live node the inventory lacks: its GPUs count, unpriced
        if n["name"] not in known and n.get("gpus"):
            machines.append(fleet_mod.PlanMachine(
                n["name"], int(n["gpus"]), n.get("gpu_model"), None, 36, Decimal(0),
                Decimal(0)))
    if not machines:
        raise BadInput("--fleet", "the cluster has no node and no inventory entry; give the "
                                  "fleet with --fleet 8x8:A100-80GB,...")
    return machines


def _price_notes(results: list[Result]) -> list[str]:
    notes = []
    r = results[0]
    if r.unpriced_gpus:
        notes.append(f"{r.unpriced_gpus} GPU(s) have no inventory entry and no known model: "
                     "counted in the replay, not in the cost (`clusterctl hardware add`)")
    if any(x.typical_priced_gpus for x in results):
        notes.append("machines typed without a price are priced from typical server prices "
                     "per model (rough; give @PRICE)")
    if r.unrated_gpu_hours:
        notes.append(f"{r.unrated_gpu_hours:,.0f} GPU-hours on models without a cloud rate "
                     "are left out of the cloud cost (`clusterctl hardware rate`)")
    return notes


def print_plan(out: PlanOutcome) -> None:
    history, results, words, notes, currency = (out.history, out.results, out.advice,
                                                out.notes, out.currency)
    console.print(f"{len(history.jobs):,} jobs from {history.source}", markup=False)
    buys = any(r.kind == "add" for r in results)
    sells = any(r.kind == "remove" for r in results)
    t = Table("scenario", "GPUs", "jobs", "avg wait", "p50", "p95", "util", "GPU-hours",
              "cost / month", "per used GPU-h", "cloud / month", *(["break-even"] if buys else []),
              *(["sale"] if sells else []))
    for r in results:
        row = [r.scenario, str(r.gpus), f"{r.jobs:,}", duration(r.avg_wait_s),
               duration(r.p50_wait_s), duration(r.p95_wait_s), f"{r.utilization:.0%}",
               f"{r.gpu_hours:,.0f}", money(r.monthly_cost, currency),
               f"{r.cost_per_used_gpu_hour:.2f}" if r.cost_per_used_gpu_hour else "-",
               money(r.cloud_cost_per_month, currency)]
        if buys:
            row.append(f"{r.break_even_months:.0f} mo" if r.break_even_months else
                       ("never" if r.kind == "add" else ""))
        if sells:
            row.append(money(r.sale_cash, currency) if r.sale_cash is not None else "")
        t.add_row(*row)
    console.print(t)
    for n in notes:
        err_console.print(f"note: {n}", markup=False)
    for w in words:
        console.print(w[:1].upper() + w[1:], markup=False)
