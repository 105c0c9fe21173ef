"""Reports, controller side: load the inputs from the store, fill in the usage of allocations
that have no record yet (still running, or ended within the grace period) from the samples, run
the pure report code, and shape the result as JSON for the API.

Money leaves here rounded to the cent as JSON numbers; everything before is exact Decimal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import numpy as np

from clusterctl.controller.telemetry import allocation_usage
from clusterctl.cost.model import cents
from clusterctl.cost.rates import effective_rates, rate_for
from clusterctl.reports import documents as doc
from clusterctl.reports.amortization import AmortizationReport, Ledger, amortization_report
from clusterctl.reports.cost import CostReport, CostRow, accounted, cost_report
from clusterctl.reports.documents import ReportDocument, Span
from clusterctl.reports.inputs import MS_PER_DAY, Inputs, Period, Priced, kwh, ms_iso
from clusterctl.reports.table import FIELDS, HeldTable
from clusterctl.reports.utilization import UtilReport, UtilRow, utilization_report
from clusterctl.reports.waste import WasteReport, waste_report
from clusterctl.store import Allocation, CostStore, ReportStore, SampleStore

LIVE_RAW_S = 86400.0
def money(value: Decimal) -> float:
    return float(cents(value)) if value else 0.0


@dataclass
class ReportService:
    store: ReportStore
    costs: CostStore
    samples: SampleStore
    waste_threshold: float = 0.10

    def inputs(self, start_ms: int, end_ms: int, now_ms: int, energy_bucket_ms: int = 0,
               held: HeldTable | None = None, labels: bool = True,
               fields: Sequence[str] = FIELDS, names: bool = True) -> Inputs:
        """``energy_bucket_ms``: also each node's energy in buckets of this size (the idle
        GPUs' draw: cost wants the whole period, amortization days; 0 for none)."""
        rates = effective_rates(self.costs.rate_overrides())
        machines = {}
        for spec in self.costs.machines():
            rate = rate_for(spec.gpu_model, rates)
            machines[spec.node] = Priced(spec.node, spec.gpu_model, spec.machine(),
                                         rate.per_gpu_hour if rate else None)
        site = self.costs.site()
        return Inputs(
            period=Period(start_ms, end_ms), now_ms=now_ms,
            held=[], held_table=(self.held(start_ms, end_ms, now_ms, labels=labels,
                                           fields=fields, names=names)
                                 if held is None else held),
            machines=machines,
            prices=site,
            node_energy_mj=self.store.node_energy(start_ms, end_ms, energy_bucket_ms)
            if energy_bucket_ms else {},
            gpus_seen=self.store.gpus_seen(), models_seen=self.store.models_seen(),
            first_sample_ms=self.store.first_samples(),
            waste_threshold=self.waste_threshold)

    def held(self, start_ms: int, end_ms: int, now_ms: int,
             job_ids: Sequence[int] | None = None,
             labels: bool = True, fields: Sequence[str] = FIELDS, names: bool = True
             ) -> HeldTable:
        """Every GPU held in the period: from the usage records, and for allocations without
        one yet (running, or ended within the grace period) from the samples as they stand:
        raw samples for allocations of the last day, minute rollups for longer-running ones,
        so a report over a week-long job reads 10,080 rows per GPU, not 120,960."""
        rows: list[tuple[Any, ...]] = list(self.store.records(start_ms, end_ms, job_ids, fields))
        pick = [FIELDS.index(f) for f in fields]
        pending = self.store.unrecorded(start_ms, end_ms, job_ids)
        now = now_ms / 1000
        for aid, j, node, gpu, uuid, started, ended in pending:
            a = Allocation(id=aid, job_id=j, attempt=0, rank=0, node=node, node_id="",
                           gpu_index=gpu, gpu_uuid=uuid, started_at=started, ended_at=ended)
            usage, idle = allocation_usage(a, self.samples, now, now - LIVE_RAW_S,
                                           self.waste_threshold)
            full = (j, node, gpu, int(started.timestamp() * 1000),
                    int(ended.timestamp() * 1000) if ended else now_ms, usage.covered_s,
                    usage.avg_utilization, usage.energy_mj, idle.idle_s, idle.longest_s)
            rows.append(tuple(full[i] for i in pick))
        of_job: dict[int, tuple[str, str, str]] = (
            self.store.jobs((r[0] for r in rows), names) if labels
            else defaultdict(lambda: ("", "", "")))
        return HeldTable.from_rows(rows, of_job, fields)

    def job_cost(self, job_id: int, now_ms: int) -> doc.JobCost | None:
        """A job's cost so far (``show``): its allocations over their whole windows."""
        return self.jobs_cost([job_id], now_ms)

    def jobs_cost(self, job_ids: Sequence[int], now_ms: int, exact: bool = False
                  ) -> doc.JobCost | None:
        """What these jobs cost together so far (a service's replicas), summed before it is
        rounded to the cent; ``exact``: not rounded at all (a service's cost per request
        divides it: a thousand requests may cost a fraction of a cent)."""
        held = self.held(0, now_ms, now_ms, job_ids)
        if not len(held):
            return None
        inputs = self.inputs(int(held.start.min()), now_ms, now_ms, held=held)
        rows = cost_report(inputs, "job").rows
        if not rows:
            return None
        total = CostRow(key="", gpu_ms=sum(r.gpu_ms for r in rows),
                        energy_mj=sum(r.energy_mj for r in rows),
                        capacity_cost=sum((r.capacity_cost for r in rows), Decimal(0)),
                        energy_cost=sum((r.energy_cost for r in rows), Decimal(0)),
                        cloud_equivalent=sum((r.cloud_equivalent for r in rows), Decimal(0)))
        if exact:
            return doc.JobCost(
                gpu_hours=total.gpu_hours, energy_kwh=total.energy_mj / 3.6e9,
                capacity_cost=float(total.capacity_cost), energy_cost=float(total.energy_cost),
                total_cost=float(total.total_cost),
                cloud_equivalent=float(total.cloud_equivalent),
                currency=inputs.prices.currency)
        row = cost_row(total, inputs.prices.currency, "")
        return doc.JobCost(**row.model_dump(include=set(doc.JobCost.model_fields)))


def _period(p: Period) -> Span:
    return Span.model_validate({"from": ms_iso(p.start_ms), "to": ms_iso(p.end_ms)})


def cost_row(r: CostRow, currency: str, kind: str) -> doc.CostRow:
    return doc.CostRow(key=r.key, **r.labels, gpu_hours=r.gpu_hours,
                       energy_kwh=r.energy_mj / 3.6e9, capacity_cost=money(r.capacity_cost),
                       energy_cost=money(r.energy_cost), idle_cost=money(r.idle_cost),
                       total_cost=money(r.total_cost),
                       cloud_equivalent=money(r.cloud_equivalent), currency=currency,
                       kind=kind)


def cost_json(report: CostReport, inputs: Inputs) -> doc.CostDocument:
    """A paged report's rows are its page and one ``rest`` row summing the others
    (``total`` is always the whole period's)."""
    cur = inputs.prices.currency
    rows = [cost_row(r, cur, report.by) for r in report.rows]
    if report.rest is not None:
        rows.append(cost_row(report.rest, cur, "rest"))
    if not report.loaded:
        rows.append(cost_row(report.idle, cur, "idle"))
    if report.not_tracked.gpu_ms:
        rows.append(cost_row(report.not_tracked, cur, "not-tracked"))
    return doc.CostDocument(
        report="cost", by=report.by, loaded=report.loaded, currency=cur,
        row_count=report.row_count, period=_period(inputs.period), rows=rows,
        total=doc.CostTotal(capacity_cost=money(report.capacity_cost),
                            energy_cost=money(report.energy_cost),
                            total_cost=money(accounted(report)),
                            idle_cost=money(report.idle.total_cost),
                            not_tracked_cost=money(report.not_tracked.total_cost),
                            gpu_hours=report.rows_total.gpu_hours,
                            cloud_equivalent=money(report.rows_total.cloud_equivalent)),
        prices=doc.Prices(tariff_per_kwh=str(inputs.prices.tariff_per_kwh),
                          pue=str(inputs.prices.pue)),
        warnings=report.warnings)


def _util_row(report: UtilReport, r: UtilRow) -> doc.UtilizationRow:
    return doc.UtilizationRow(
        key=r.key, **r.labels, gpu_hours=r.gpu_hours,
        available_gpu_hours=None if r.available_ms is None else r.available_ms / 3.6e6,
        allocated_share=report.allocated_share(r), busy_share=r.busy_share,
        coverage=r.coverage, idle_gpu_hours=r.idle_gpu_hours,
        not_tracked_gpu_hours=r.not_tracked_gpu_hours)


def utilization_json(report: UtilReport, inputs: Inputs) -> doc.UtilizationDocument:
    return doc.UtilizationDocument(
        report="utilization", by=report.by, period=_period(inputs.period),
        rows=[_util_row(report, r) for r in report.rows], total=_util_row(report, report.total),
        series=[doc.UtilizationPoint(t=ms_iso(t), allocated_share=a, busy_share=b)
                for t, a, b in report.series],
        bucket_s=report.bucket_ms // 1000)


def waste_json(report: WasteReport, inputs: Inputs) -> doc.WasteDocument:
    r = report.reclaimed
    return doc.WasteDocument(
        report="waste", period=_period(inputs.period), currency=inputs.prices.currency,
        threshold=report.threshold, min_idle_s=report.min_idle_s,
        rows=[doc.WasteRow(job_id=w.job_id, name=w.name, user=w.user, team=w.team,
                           gpus=w.gpus, gpu_hours=w.held_ms / 3.6e6,
                           idle_gpu_hours=w.idle_gpu_hours, avg_utilization=w.avg_utilization,
                           longest_idle_s=w.longest_idle_s, waste_cost=money(w.cost))
              for w in report.rows],
        by_user={k: money(v) for k, v in sorted(report.by_user.items())},
        by_team={k: money(v) for k, v in sorted(report.by_team.items())},
        total_cost=money(report.cost),
        reclaimed=doc.Reclaimed(jobs=r.jobs, gpus=r.gpus, gpu_hours=r.gpu_hours,
                                cost=money(r.cost), without_limit=r.without_limit))


def _day(ms: int | None) -> str | None:
    return ms_iso(ms)[:10] if ms else None


def _ledger(lg: Ledger, **more: float) -> doc.Ledger:
    note = ("reached" if lg.break_even_reached else
            "projected" if lg.break_even_ms is not None else
            "not reached (sold)" if lg.sold_ms is not None else "not at this utilization")
    return doc.Ledger(
        node=lg.key, gpu_model=lg.gpu_model, gpus=lg.gpus,
        price=money(lg.price), net_price=money(lg.net_price), purchased=_day(lg.purchased_ms),
        depreciation_to_date=money(lg.depreciation), fees_to_date=money(lg.fees),
        energy_kwh_to_date=float(kwh(lg.energy_mj)),
        energy_cost_to_date=money(lg.energy_cost), owned_cost=money(lg.owned_cost),
        used_gpu_hours=lg.used_gpu_hours, utilization=lg.utilization,
        cloud_equivalent=money(lg.cloud_equivalent), net_saving=money(lg.net_saving),
        trailing_utilization=lg.trailing_utilization, break_even=_day(lg.break_even_ms),
        break_even_status=note,
        sold_on=ms_iso(lg.sold_ms)[:10] if lg.sold_ms is not None else None,
        sold_for=money(lg.sold_for) if lg.sold_for is not None else None,
        book_value=money(lg.book_value),
        sale_gain=money(lg.sale_gain) if lg.sale_gain is not None else None, **more)


def amortization_json(report: AmortizationReport, inputs: Inputs) -> doc.AmortizationDocument:
    now = report.now_ms
    t = report.total
    return doc.AmortizationDocument(
        report="amortization", currency=inputs.prices.currency, as_of=ms_iso(now),
        machines=[_ledger(lg, age_days=((lg.sold_ms or now) - lg.purchased_ms) / 86_400_000)
                  for lg in report.machines],
        models=[_ledger(m) for m in report.models], total=_ledger(t),
        series=[doc.AmortizationPoint(t=ms_iso(d)[:10], owned=money(o), cloud=money(c))
                for d, o, c in t.series],
        projection=doc.Projection(day_owned=money(t.day_owned), day_cloud=money(t.day_cloud)))


@dataclass(frozen=True)
class _Ask:
    """What a report was asked for, beyond its period."""

    by: str | None
    loaded: bool
    min_idle_s: float
    page: tuple[int, int] | None
    start_ms: int
    end_ms: int


def _cost(service: ReportService, inputs: Inputs, ask: _Ask) -> ReportDocument:
    return cost_json(cost_report(inputs, ask.by or "job", ask.loaded, ask.page), inputs)


def _utilization(service: ReportService, inputs: Inputs, ask: _Ask) -> ReportDocument:
    return utilization_json(utilization_report(inputs, ask.by or "node"), inputs)


def _waste(service: ReportService, inputs: Inputs, ask: _Ask) -> ReportDocument:
    inputs.idle_ended = service.store.idle_ended(ask.start_ms, ask.end_ms)
    return waste_json(waste_report(inputs, ask.min_idle_s), inputs)


@dataclass(frozen=True)
class _Kind:
    render: Callable[[ReportService, Inputs, _Ask], ReportDocument]
    fields: tuple[str, ...]
    """The held table's columns it reads."""
    energy_over_period: bool = False
    """Energy summed over the whole period (cost), not per hour."""
    job_labels: bool = False
    """Every row's job labels and names, whatever it is by (waste lists jobs)."""


PERIOD_REPORTS: dict[str, _Kind] = {
    "cost": _Kind(_cost, ("job", "node", "start", "end", "energy"), energy_over_period=True),
    "utilization": _Kind(_utilization, ("job", "node", "start", "end", "covered", "util")),
    "waste": _Kind(_waste, ("job", "node", "gpu", "start", "end", "covered", "util", "idle",
                            "longest"), job_labels=True),
}
"""The reports over a period (amortization covers the machines' lives: ``build``)."""


def build(service: ReportService, kind: str, start: datetime, end: datetime, *,
          by: str | None = None, loaded: bool = False, min_idle_s: float = 1800.0,
          now: datetime | None = None, limit: int | None = None, offset: int = 0
          ) -> ReportDocument:
    """``limit`` and ``offset`` page the rows of ``cost`` (see :func:`cost_json`)."""
    now = now or datetime.now(timezone.utc)
    now_ms = int(now.timestamp() * 1000)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    if kind == "amortization":
        purchases = [m.machine().purchased for m in service.costs.machines()]
        first = min(purchases) if purchases else now
        first_ms = int(first.timestamp() * 1000) // MS_PER_DAY * MS_PER_DAY
        inputs = service.inputs(first_ms, now_ms, now_ms, energy_bucket_ms=MS_PER_DAY,
                                labels=False, fields=("job", "node", "start", "end"))
        return amortization_json(amortization_report(inputs), inputs)
    report = PERIOD_REPORTS.get(kind)
    if report is None:
        raise ValueError(kind)
    end_ms = min(end_ms, now_ms)
    inputs = service.inputs(start_ms, end_ms, now_ms,
                            energy_bucket_ms=(max(1, end_ms - start_ms)
                                              if report.energy_over_period else 0),
                            labels=report.job_labels or by in ("job", "user", "team"),
                            names=report.job_labels or by == "job",
                            fields=report.fields + (("gpu",) if by == "gpu" else ()))
    if by == "service":
        inputs.service_of = service.store.services_of(np.unique(inputs.table.job).tolist())
    page = None if limit is None else (limit, offset)
    return report.render(service, inputs, _Ask(by, loaded, min_idle_s, page, start_ms, end_ms))
