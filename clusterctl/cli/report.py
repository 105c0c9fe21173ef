"""``clusterctl report``: utilization, cost, amortization and waste, as a table, ``--json``,
``--csv`` or a chart (``--plot FILE``, PNG or self-contained HTML); ``report html`` puts them
all on one page to share."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from functools import singledispatch
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from clusterctl.cli.client import Client
from clusterctl.cli.common import client, console, handles_errors, percent, print_json
from clusterctl.parsing import BadInput, format_duration, parse_count
from clusterctl.reports.documents import (
    DOCUMENTS,
    AmortizationDocument,
    CostDocument,
    Document,
    Ledger,
    Reclaimed,
    ReportDocument,
    UtilizationDocument,
    UtilizationRow,
    WasteDocument,
)

app = typer.Typer(help="Utilization, cost, amortization and waste reports.",
                  no_args_is_help=True)

Since = Annotated[str | None, typer.Option(help="Period back from now, e.g. 30d (default).")]
From = Annotated[str | None, typer.Option("--from", help="Start date, YYYY-MM-DD (UTC).")]
To = Annotated[str | None, typer.Option("--to", help="End date, YYYY-MM-DD (default: now).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Csv = Annotated[bool, typer.Option("--csv", help="Print CSV rows.")]
Plot = Annotated[Path | None, typer.Option(
    "--plot", help="Write a chart: FILE.png, or FILE.html for a page with chart and table.")]

Columns = tuple[list[str], list[list[str]]]


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _hours(v: float | None) -> str:
    """GPU-hours: small amounts (a short job) keep three decimals instead of showing 0.0."""
    return _num(v, 3 if v is not None and 0 < abs(v) < 1 else 1)


def check_plot(path: Path | None) -> None:
    if path is not None and path.suffix.lower() not in (".png", ".html"):
        raise BadInput("--plot", f"{str(path)!r} must end in .png or .html")
    if path is not None and not path.parent.is_dir():
        raise BadInput("--plot", f"{str(path.parent)!r} is not a directory")
    if path is not None:
        plots()  # before any work: a missing extra is said at once


def plots() -> ModuleType:
    """``reports.plots``, which needs matplotlib: an optional extra, so that a GPU node's agent
    does not pull it in. Without it, a one-line error says what to install."""
    try:
        from clusterctl.reports import plots
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "matplotlib":
            raise
        raise BadInput("--plot", "charts need matplotlib: pip install 'clusterctl[plots]'"
                       ) from None
    return plots


D = TypeVar("D", bound=Document)
KIND_OF: dict[type[Document], str] = {document: kind for kind, document in DOCUMENTS.items()}


def fetch(c: Client, document: type[D], **query: Any) -> D:
    """The report, parsed at the edge into its typed document (a query of None: not asked)."""
    params = {k: v for k, v in query.items() if v is not None}
    return document.model_validate(
        c.json("GET", f"/v1/reports/{KIND_OF[document]}", params=params))


def _fetch(document: type[D], since: str | None, from_: str | None, to: str | None,
           **params: Any) -> D:
    return fetch(client(), document, since=since, to=to, **{"from": from_}, **params)


def rich_table(cols: Columns) -> Table:
    """A report's columns as a table: labels left, figures right."""
    table = Table(box=None, pad_edge=False)
    for i, c in enumerate(cols[0]):
        table.add_column(c, justify="left" if i == 0 or c in ("NAME", "USER", "TEAM", "MODEL")
                         else "right")
    for cells in cols[1]:
        table.add_row(*cells)
    return table


def _emit(data: ReportDocument, cols: Columns, rows_for_csv: Sequence[Any],
          json_: bool, csv_: bool, plot: Path | None, footer: Sequence[str] = ()) -> None:
    if plot is not None:
        plots().write(data, plot, cols)
    if json_:
        print_json(data.wire())
    elif csv_:
        keys: list[str] = []
        rows_for_csv = [r.wire() for r in rows_for_csv]
        for r in rows_for_csv:
            keys += [k for k in r if k not in keys]
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows_for_csv)
    else:
        console.print(rich_table(cols))
        for line in footer:
            console.print(line)
    if plot is not None and not json_ and not csv_:
        console.print(f"chart written to {plot}")


# -- utilization ------------------------------------------------------------------------------


def utilization_columns(data: UtilizationDocument) -> Columns:
    cols = [data.by.upper(), "GPU-H HELD", "AVAILABLE", "ALLOCATED", "BUSY", "COVERAGE",
            "IDLE GPU-H", "NOT TRACKED"]

    def row(r: UtilizationRow, key: str) -> list[str]:
        return [key, _hours(r.gpu_hours), _hours(r.available_gpu_hours),
                percent(r.allocated_share), percent(r.busy_share),
                percent(r.coverage), _num(r.idle_gpu_hours), _num(r.not_tracked_gpu_hours)]

    return cols, [row(r, r.key) for r in data.rows] + [row(data.total, "total")]


@app.command()
@handles_errors
def utilization(since: Since = None, from_: From = None, to: To = None,
                by: Annotated[str, typer.Option(
                    help="node|gpu|gpu-type|user|team|job|day")] = "node",
                json_: Json = False, csv_: Csv = False, plot: Plot = None) -> None:
    """Allocated share, busy share, sample coverage and idle GPU-hours (GPU-hours before a
    node's first sample are "not tracked": neither idle nor in the allocated share)."""
    check_plot(plot)
    data = _fetch(UtilizationDocument, since, from_, to, by=by)
    _emit(data, utilization_columns(data), data.rows, json_, csv_, plot,
          [f"{data.period.from_[:16]} to {data.period.to[:16]} UTC; busy share is "
           "measured SM utilization over the held time that samples cover."])


# -- cost -------------------------------------------------------------------------------------


OWN_ROWS = {"idle": "(idle)", "not-tracked": "(not tracked)"}
"""The cost rows that are no job's: capacity no job held, and capacity before a machine's
first sample (nobody knows whether it was used)."""


def cost_columns(data: CostDocument) -> Columns:
    job = data.by == "job"
    cols = [data.by.upper(), *(["NAME", "USER"] if job else []), "GPU-H", "KWH",
            "CAPACITY", "ENERGY", *(["IDLE SHARE"] if data.loaded else []), "TOTAL",
            "CLOUD"]
    rows = []
    for r in data.rows:
        key = OWN_ROWS.get(r.kind, r.key)
        rows.append([key, *([r.name, r.user] if job else []),
                     _hours(r.gpu_hours), _hours(r.energy_kwh),
                     _num(r.capacity_cost, 2),
                     _num(r.energy_cost, 2),
                     *([_num(r.idle_cost, 2)] if data.loaded else []),
                     _num(r.total_cost, 2),
                     "" if r.kind in OWN_ROWS else _num(r.cloud_equivalent, 2)])
    t = data.total
    rows.append(["total", *(["", ""] if job else []), _hours(t.gpu_hours), "",
                 _num(t.capacity_cost, 2), _num(t.energy_cost, 2),
                 *([""] if data.loaded else []), _num(t.total_cost, 2),
                 _num(t.cloud_equivalent, 2)])
    return cols, rows


@app.command()
@handles_errors
def cost(since: Since = None, from_: From = None, to: To = None,
         by: Annotated[str, typer.Option(help="job|user|team|gpu-type|month|service")] = "job",
         loaded: Annotated[bool, typer.Option(
             "--loaded", help="Spread the idle capacity cost over the rows by GPU-hours.")] = False,
         limit: Annotated[str, typer.Option(
             help="With --by job: the N dearest jobs, and one row for the rest.")] = "100",
         all_: Annotated[bool, typer.Option("--all", help="With --by job: every job.")] = False,
         json_: Json = False, csv_: Csv = False, plot: Plot = None) -> None:
    """Capacity, energy and total cost on the owned hardware, and the cloud equivalent."""
    check_plot(plot)
    rows = parse_count(limit, "--limit", 1_000_000)
    data = _fetch(CostDocument, since, from_, to, by=by, loaded=str(loaded).lower(),
                  limit=rows, all=str(all_).lower())
    p = data.prices
    _emit(data, cost_columns(data), data.rows, json_, csv_, plot,
          [f"{data.currency}; energy at {p.tariff_per_kwh}/kWh x PUE {p.pue}; "
           f"{data.period.from_[:16]} to {data.period.to[:16]} UTC",
           *([f"the {sum(r.kind == 'job' for r in data.rows)} dearest of "
              f"{data.row_count:,} jobs; "
              "--limit N or --all for more"] if any(r.kind == "rest" for r in data.rows)
             else []),
           *[f"warning: {w}" for w in data.warnings]])


# -- amortization -----------------------------------------------------------------------------


def amortization_columns(data: AmortizationDocument) -> Columns:
    cols = ["NODE", "MODEL", "GPUS", "PRICE", "AGE", "DEPRECIATION", "FEES", "ENERGY",
            "USED GPU-H", "UTIL", "CLOUD EQUIV", "NET SAVING", "30D UTIL", "BREAK-EVEN"]

    def row(m: Ledger) -> list[str]:
        be = m.break_even or ""
        status = {"reached": f"{be} (reached)", "projected": f"{be} (projected)"}.get(
            m.break_even_status, m.break_even_status)
        age = format_duration(m.age_days * 86400) if m.age_days is not None else ""
        return [m.node, m.gpu_model, str(m.gpus), _num(m.price, 0), age,
                _num(m.depreciation_to_date, 0), _num(m.fees_to_date, 0),
                _num(m.energy_cost_to_date, 0), _num(m.used_gpu_hours, 0),
                percent(m.utilization), _num(m.cloud_equivalent, 0),
                _num(m.net_saving, 0), percent(m.trailing_utilization), status]

    return cols, [row(m) for m in [*data.machines, *data.models, data.total]]


@app.command()
@handles_errors
def amortization(json_: Json = False, csv_: Csv = False, plot: Plot = None) -> None:
    """Per machine and in total: what owning cost against renting the same GPU-hours, and
    when it pays for itself at the last 30 days' utilization."""
    check_plot(plot)
    data = _fetch(AmortizationDocument, None, None, None)
    sales = [f"{m.node} sold {m.sold_on} for {m.sold_for or 0:,.2f}: book value then "
             f"{m.book_value:,.2f}, {'gain' if (m.sale_gain or 0) >= 0 else 'loss'} "
             f"{abs(m.sale_gain or 0):,.2f}; its ledger closed at the sale."
             for m in data.machines if m.sold_on]
    _emit(data, amortization_columns(data), [*data.machines, data.total], json_, csv_, plot,
          [f"{data.currency}, as of {data.as_of[:16]} UTC. Owned cost = price less "
           "expected resale (the sale price once sold) + fees + energy; net saving = cloud "
           "equivalent - owned cost.", *sales])


# -- waste ------------------------------------------------------------------------------------


def waste_columns(data: WasteDocument) -> Columns:
    cols = ["JOB", "NAME", "USER", "TEAM", "GPUS", "GPU-H", "IDLE GPU-H", "AVG UTIL",
            "LONGEST IDLE", "COST"]
    return cols, [[str(r.job_id), r.name, r.user, r.team, str(r.gpus),
                   _hours(r.gpu_hours), _hours(r.idle_gpu_hours),
                   percent(r.avg_utilization), format_duration(r.longest_idle_s),
                   _num(r.waste_cost, 2)] for r in data.rows]


@app.command()
@handles_errors
def waste(since: Since = None, from_: From = None, to: To = None,
          min_idle: Annotated[str, typer.Option(
              help="Shortest idle stretch that counts, e.g. 30m.")] = "30m",
          json_: Json = False, csv_: Csv = False, plot: Plot = None) -> None:
    """Jobs that held GPUs under the idle threshold for a long stretch, and what it cost."""
    check_plot(plot)
    data = _fetch(WasteDocument, since, from_, to, min_idle=min_idle)
    by_team = ", ".join(f"{k} {v:,.2f}" for k, v in data.by_team.items()) or "none"
    _emit(data, waste_columns(data), data.rows, json_, csv_, plot,
          [f"Idle = under {data.threshold:.0%} utilization for "
           f"{format_duration(data.min_idle_s)} or more. Total "
           f"{data.total_cost:,.2f} {data.currency}; by team: {by_team}",
           reclaimed_line(data.reclaimed, data.currency)])


def reclaimed_line(r: Reclaimed, currency: str) -> str:
    """What idle reclaim (``--idle-timeout``) gave back in the period."""
    if not r.jobs:
        return "Idle reclaim ended no job in this period."
    text = (f"Idle reclaim ended {r.jobs} job(s), freeing {r.gpus} GPU(s): "
            f"{r.gpu_hours:,.1f} GPU-hours up to their time limits, "
            f"{r.cost:,.2f} {currency} of capacity")
    if r.without_limit:
        text += f" ({r.without_limit} without a time limit, not counted in the hours)"
    return text + "."


# -- one page ---------------------------------------------------------------------------------

@singledispatch
def columns(data: ReportDocument) -> Columns:
    """Any report's table."""
    raise TypeError(type(data))


columns.register(utilization_columns)
columns.register(cost_columns)
columns.register(amortization_columns)
columns.register(waste_columns)

SECTIONS: list[tuple[str, type[ReportDocument], dict[str, str]]] = [
    ("Utilization by node", UtilizationDocument, {"by": "node"}),
    ("Utilization by day", UtilizationDocument, {"by": "day"}),
    ("Cost by user", CostDocument, {"by": "user"}),
    ("Cost by team", CostDocument, {"by": "team"}),
    ("Cost by job", CostDocument, {"by": "job"}),
    ("Cost by service", CostDocument, {"by": "service"}),
    ("Amortization", AmortizationDocument, {}),
    ("Waste", WasteDocument, {}),
]


@app.command("html")
@handles_errors
def html_(file: Annotated[Path, typer.Argument(help="The page to write, e.g. report.html.")],
          since: Since = None, from_: From = None, to: To = None) -> None:
    """Every report with its chart on one self-contained page, to share with the team."""
    if file.suffix.lower() != ".html":
        raise BadInput("FILE", f"{str(file)!r} must end in .html")
    check_plot(file)
    charts = plots()
    sections = []
    for heading, document, params in SECTIONS:
        data: ReportDocument = _fetch(
            document, *((None, None, None) if document is AmortizationDocument else
                        (since, from_, to)), **params)
        chart = charts.svg(charts.figure(data)) if heading != "Utilization by node" else ""
        cols, rows = columns(data)
        if len(rows) > 60:  # the biggest rows, then the idle and total rows
            rows = [*rows[:50], ["..."] * len(cols), *rows[-2:]]
        sections.append((heading, chart, charts.table_html(cols, rows)))
    file.write_text(charts.page("clusterctl cluster report", sections))
    console.print(f"report written to {file}")
