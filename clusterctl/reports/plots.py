"""Charts of the reports, drawn with matplotlib from the reports' JSON (what the API returns),
so a chart never shows a number the table does not. PNG, or a self-contained HTML page (the
chart inline as SVG, with the table) when the file name ends in ``.html``.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from datetime import datetime
from functools import singledispatch
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from clusterctl.reports.documents import (
    AmortizationDocument,
    CostDocument,
    CostRow,
    ReportDocument,
    UtilizationDocument,
    WasteDocument,
)

BLUE, ORANGE, GREEN, GREY, RED = "#1f77b4", "#ff7f0e", "#2ca02c", "#9e9e9e", "#d62728"


def _times(values: Sequence[str]) -> Any:
    """Matplotlib day numbers (an array) for ISO times."""
    return mdates.date2num([datetime.fromisoformat(v) for v in values])


def _money_axis(ax: Any, currency: str) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel(currency)


def _date_axis(ax: Any) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


@singledispatch
def figure(data: ReportDocument) -> Figure:
    """Any report's chart."""
    raise TypeError(type(data))


@figure.register
def utilization_figure(data: UtilizationDocument) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    s = data.series
    t = _times([p.t for p in s])
    alloc = [p.allocated_share if p.allocated_share is not None else float("nan") for p in s]
    busy = [p.busy_share if p.busy_share is not None else float("nan") for p in s]
    width = data.bucket_s / 86400 * 0.9
    ax.bar(t, alloc, width=width, align="edge", color=BLUE, alpha=0.35,
           label="allocated share (GPU-hours held / available)")
    ax.plot(t + width / 0.9 / 2, busy, color=ORANGE,
            marker="o", markersize=3, label="busy share (SM utilization of held GPUs)")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _date_axis(ax)
    total = data.total
    ax.set_title(f"GPU utilization {data.period.from_[:10]} to {data.period.to[:10]}"
                 f": {_pct(total.allocated_share)} allocated, {_pct(total.busy_share)} "
                 "busy", loc="left")
    ax.legend(loc="upper right", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


OWN = {"idle": "idle capacity", "not-tracked": "not tracked"}
"""The cost rows that are no job's, and their labels."""


@figure.register
def cost_figure(data: CostDocument, top: int = 20) -> Figure:
    rows = [r for r in data.rows if r.kind not in OWN][:top]
    labels = [_cost_label(r, data.by) for r in rows]
    for kind, label in OWN.items():
        own = next((r for r in data.rows if r.kind == kind), None)
        if own is not None:
            rows.append(own)
            labels.append(label)
    rows, labels = rows[::-1], labels[::-1]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.38 * len(rows) + 1.5)), layout="constrained")
    y = range(len(rows))
    cap = [r.capacity_cost for r in rows]
    energy = [r.energy_cost for r in rows]
    idle_share = [r.idle_cost for r in rows]
    jobs = [i for i, r in enumerate(rows) if r.kind not in OWN]
    idle_rows = [i for i, r in enumerate(rows) if r.kind == "idle"]
    unknown = [i for i, r in enumerate(rows) if r.kind == "not-tracked"]
    ax.barh(jobs, [cap[i] for i in jobs], color=BLUE, label="capacity (depreciation + fees)")
    if idle_rows:
        ax.barh(idle_rows, [cap[i] for i in idle_rows], color=GREY,
                label="idle capacity (no job held the GPUs)")
    if unknown:
        ax.barh(unknown, [cap[i] for i in unknown], color=GREY, alpha=0.45, hatch="//",
                label="not tracked (before the first sample)")
    ax.barh(y, energy, left=cap, color=GREEN, label="energy")
    if data.loaded:
        ax.barh(y, idle_share, left=[a + b for a, b in zip(cap, energy, strict=True)],
                color=GREY, label="share of idle capacity")
    ax.scatter([r.cloud_equivalent for r in rows], list(y), marker="|", s=300, color=RED,
               zorder=3, label="cloud equivalent")
    ax.set_yticks(list(y), labels)
    # Whole units, but cents where the axis spans a few units (0, 0.5, 1 read as 0, 0, 1).
    decimals = 0 if ax.get_xlim()[1] >= 10 else 2
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.{decimals}f}"))
    ax.set_xlabel(data.currency)
    t = data.total
    ax.set_title(f"Cost by {data.by} {data.period.from_[:10]} to "
                 f"{data.period.to[:10]}: {t.total_cost:,.2f} {data.currency} "
                 f"(idle {t.idle_cost:,.2f})", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _cost_label(r: CostRow, by: str) -> str:
    if by == "job":
        return f"#{r.key} {r.name} ({r.user})"
    return r.key


@figure.register
def amortization_figure(data: AmortizationDocument) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    s = data.series
    t = _times([p.t for p in s])
    ax.plot(t, [p.owned for p in s], color=BLUE, label="owned: price less resale (or the sale "
            "price), fees, energy (cumulative)")
    ax.plot(t, [p.cloud for p in s], color=ORANGE, label="cloud equivalent of the used "
            "GPU-hours (cumulative)")
    total = data.total
    if s and total.break_even and total.break_even_status == "projected":
        end = _times([total.break_even])[0]
        days = float(end - t[-1])
        proj = data.projection
        owned_end = s[-1].owned + proj.day_owned * days
        ax.plot([t[-1], end], [s[-1].owned, owned_end], color=BLUE, ls="--")
        ax.plot([t[-1], end], [s[-1].cloud, s[-1].cloud + proj.day_cloud * days],
                color=ORANGE, ls="--", label="projected at the last 30 days' use")
        ax.plot([end], [owned_end], marker="*", markersize=14, color=RED, ls="none",
                label=f"break-even {total.break_even} (projected)")
    elif total.break_even:
        when = _times([total.break_even])
        y = next((p.owned for p in s if p.t >= total.break_even), 0.0)
        ax.plot(when, [y], marker="*", markersize=14, color=RED, ls="none",
                label=f"break-even {total.break_even}")
    for m in data.machines:
        if m.sold_on:
            gain = m.sale_gain or 0.0
            ax.axvline(_times([m.sold_on])[0], color=GREY, ls=":",
                       label=f"{m.node} sold for {m.sold_for or 0:,.0f} "
                             f"({'gain' if gain >= 0 else 'loss'} {abs(gain):,.0f} "
                             "against book value)")
    _money_axis(ax, data.currency)
    _date_axis(ax)
    status = total.break_even_status
    ax.set_title(f"Owning versus renting, {len(data.machines)} machine(s): net saving "
                 f"{total.net_saving:,.0f} {data.currency}; break-even {status}"
                 + (f" {total.break_even}" if total.break_even else ""), loc="left")
    ax.legend(loc="best", frameon=True, framealpha=0.9)
    ax.grid(alpha=0.3)
    return fig


@figure.register
def waste_figure(data: WasteDocument, top: int = 20) -> Figure:
    rows = data.rows[:top][::-1]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.38 * len(rows) + 1.5)), layout="constrained")
    y = range(len(rows))
    ax.barh(y, [r.waste_cost for r in rows], color=RED)
    ax.set_yticks(list(y), [f"#{r.job_id} {r.name} ({r.user})" for r in rows])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.2f}"))
    ax.set_xlabel(f"{data.currency} of idle GPU-hours")
    ax.set_title(f"Idle GPUs held by jobs (under {data.threshold:.0%} for "
                 f"{data.min_idle_s / 60:.0f}+ min): {data.total_cost:,.2f} "
                 f"{data.currency}", loc="left")
    if not rows:
        ax.text(0.5, 0.5, "no job left its GPUs idle", ha="center", va="center",
                transform=ax.transAxes)
    ax.grid(axis="x", alpha=0.3)
    return fig


def svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A self-contained HTML page: (heading, chart SVG, table HTML) per section; no scripts,
    no links out, so it can be mailed or opened from a shared drive."""
    body = "\n".join(f"<section><h2>{html.escape(h)}</h2>{chart}{table}</section>"
                     for h, chart, table in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0 2em; font-size: 0.9em; }}
th, td {{ padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
svg {{ max-width: 100%; height: auto; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def table_html(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(data: ReportDocument, path: Path,
          table: tuple[Sequence[str], Sequence[Sequence[str]]] | None = None) -> None:
    save(figure(data), path, f"clusterctl {data.report} report", data.report.capitalize(),
         table)


def save(fig: Figure, path: Path, title: str, heading: str,
         table: tuple[Sequence[str], Sequence[Sequence[str]]] | None = None) -> None:
    """PNG, or (FILE.html) a self-contained page of the chart and its table."""
    if path.suffix.lower() == ".html":
        path.write_text(page(title, [(heading, svg(fig), table_html(*table) if table else "")]))
    else:
        fig.savefig(path, format="png", dpi=110)
        plt.close(fig)


def wait_cdfs(ax: Any, waits: dict[str, Any], what: str) -> None:
    """One wait-time CDF per named run, on a log time axis (waits span seconds to weeks)."""
    import numpy as np

    for name, values in waits.items():
        w = np.sort(np.maximum(np.asarray(values, dtype=float), 1.0)) / 3600
        q = np.linspace(0, 1, min(len(w), 2000))
        ax.plot(np.quantile(w, q) if len(w) else [], q, label=name, linewidth=1.8)
    ax.set_xscale("log")
    ax.set_xlabel("wait before first start (hours, log scale; under 1 s drawn at 1 s)")
    ax.set_ylabel("share of jobs")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=what)
    ax.set_title(f"Wait-time CDF by {what}")


def simulation_figure(waits: dict[str, Any], results: Sequence[Any] = ()) -> Figure:
    """Wait-time CDF per policy, on a log time axis (waits span seconds to weeks); on a mixed
    fleet, beside it the average wait per GPU type and policy."""
    import numpy as np

    types = results[0].types if results and results[0].types else []
    if types:
        fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained",
                                       gridspec_kw={"width_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    wait_cdfs(ax, waits, "policy")
    if types:
        width = 0.8 / len(results)
        x = np.arange(len(types))
        for i, f in enumerate(results):
            bars.bar(x + i * width - 0.4 + width / 2,
                     [max(t.avg_wait_s, 1.0) / 3600 for t in f.types], width, label=f.policy)
        bars.set_xticks(x, [f"{t.gpu_type}\n({t.jobs} jobs)" for t in types])
        bars.set_ylabel("average wait (hours, log scale; under 1 s drawn at 1 s)")
        bars.set_yscale("log")
        bars.grid(True, axis="y", which="both", alpha=0.3)
        bars.set_title("Average wait by GPU type asked (policies as on the left)")
    return fig


def write_simulation(waits: dict[str, Any], results: Sequence[Any], path: Path) -> None:
    cols = ["policy", "avg wait (h)", "p50 (h)", "p95 (h)", "p99 (h)", "avg JCT (h)",
            "bounded slowdown", "utilization", "Jain"]
    rows = [[f.policy, *(f"{v / 3600:.2f}" for v in (
        f.avg_wait_s, f.p50_wait_s, f.p95_wait_s, f.p99_wait_s, f.avg_jct_s)),
        f"{f.bounded_slowdown:.1f}", f"{f.utilization:.1%}", f"{f.jain:.3f}"]
        for f in results]
    save(simulation_figure(waits, results), path, "clusterctl simulate", "Policies",
         (cols, rows))


def plan_figure(results: Sequence[Any]) -> Figure:
    """Each scenario's wait-time CDF beside its monthly cost (owning) and what its GPU-hours
    would cost rented: the two sides of the question "buy, sell or rent?"."""
    import numpy as np

    fig, (ax, bars) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained",
                                   gridspec_kw={"width_ratios": [3, 2]})
    wait_cdfs(ax, {r.scenario: r.waits for r in results}, "scenario")
    x = np.arange(len(results))
    bars.bar(x - 0.2, [r.monthly_cost for r in results], 0.4, label="owning (cost a month)")
    bars.bar(x + 0.2, [r.cloud_cost_per_month for r in results], 0.4,
             label="renting the same GPU-hours")
    bars.set_xticks(x, [r.scenario.replace(" ", "\n", 1) for r in results], fontsize=8)
    _money_axis(bars, "USD")
    bars.grid(True, axis="y", alpha=0.3)
    bars.set_ylim(0, bars.get_ylim()[1] * 1.2)  # room above the bars for the legend
    bars.legend(loc="upper center", ncols=2, fontsize=8)
    bars.set_title("Monthly cost by scenario")
    return fig


def write_plan(results: Sequence[Any], path: Path) -> None:
    cols = ["scenario", "GPUs", "avg wait (h)", "p95 (h)", "utilization", "cost / month",
            "cloud / month", "break-even (months)"]
    rows = [[r.scenario, str(r.gpus), f"{r.avg_wait_s / 3600:.2f}", f"{r.p95_wait_s / 3600:.2f}",
             f"{r.utilization:.1%}", f"{r.monthly_cost:,.0f}", f"{r.cloud_cost_per_month:,.0f}",
             f"{r.break_even_months:.1f}" if r.break_even_months else ""] for r in results]
    save(plan_figure(results), path, "clusterctl plan", "Scenarios", (cols, rows))
