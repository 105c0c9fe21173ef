"""The cost basis in the database: the hardware inventory, site settings and cloud rates."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clusterctl.cost.inventory import HardwareSpec, SiteSettings, site_settings
from clusterctl.cost.rates import CloudRate, model_key
from clusterctl.store.columns import utcnow
from clusterctl.store.cost_tables import CloudRateRow, Hardware, SiteSetting


class HardwareExists(ValueError):
    pass


def _spec(row: Hardware) -> HardwareSpec:
    return HardwareSpec(node=row.node, gpus=row.gpus, gpu_model=row.gpu_model, price=row.price,
                        purchased=row.purchased, life_months=row.life_months,
                        resale=row.resale, monthly_fees=row.monthly_fees,
                        sold_on=row.sold_on, sold_for=row.sold_for)


def _row(spec: HardwareSpec) -> Hardware:
    return Hardware(node=spec.node, gpus=spec.gpus, gpu_model=spec.gpu_model, price=spec.price,
                    purchased=spec.purchased, life_months=spec.life_months, resale=spec.resale,
                    monthly_fees=spec.monthly_fees, sold_on=spec.sold_on,
                    sold_for=spec.sold_for, updated_at=utcnow())


class CostStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- inventory ----------------------------------------------------------------------------

    def machines(self) -> list[HardwareSpec]:
        with Session(self.engine) as s:
            return [_spec(r) for r in s.exec(select(Hardware).order_by(Hardware.node))]

    def machine(self, node: str) -> HardwareSpec | None:
        with Session(self.engine) as s:
            row = s.get(Hardware, node)
            return _spec(row) if row else None

    def add(self, spec: HardwareSpec) -> None:
        with Session(self.engine) as s:
            if s.get(Hardware, spec.node) is not None:
                raise HardwareExists(spec.node)
            s.add(_row(spec))
            try:
                s.commit()
            except IntegrityError as e:
                raise HardwareExists(spec.node) from e

    def put(self, specs: Sequence[HardwareSpec]) -> tuple[int, int]:
        """Add or replace machines in one transaction (``set``, ``import``): all or none.
        Returns (added, updated)."""
        added = updated = 0
        with Session(self.engine) as s:
            for spec in specs:
                existing = s.get(Hardware, spec.node)
                if existing is None:
                    added += 1
                    s.add(_row(spec))
                else:
                    updated += 1
                    for key, value in _row(spec).model_dump().items():
                        setattr(existing, key, value)
                    s.add(existing)
            s.commit()
        return added, updated

    # -- site settings and cloud rates --------------------------------------------------------

    def site(self) -> SiteSettings:
        with Session(self.engine) as s:
            values = {r.key: r.value for r in s.exec(select(SiteSetting))}
        return site_settings(values)

    def set_site(self, settings: SiteSettings) -> None:
        with Session(self.engine) as s:
            for key, value in settings.as_json().items():
                row = s.get(SiteSetting, key) or SiteSetting(key=key, value=value)
                row.value = value
                s.add(row)
            s.commit()

    def rate_overrides(self) -> dict[str, CloudRate]:
        with Session(self.engine) as s:
            return {r.model_key: CloudRate(r.gpu_model, r.per_gpu_hour, r.source)
                    for r in s.exec(select(CloudRateRow))}

    def set_rate(self, rate: CloudRate) -> None:
        key = model_key(rate.gpu_model)
        with Session(self.engine) as s:
            row = s.get(CloudRateRow, key) or CloudRateRow(
                model_key=key, gpu_model=rate.gpu_model, per_gpu_hour=rate.per_gpu_hour,
                source=rate.source, updated_at=utcnow())
            row.gpu_model, row.per_gpu_hour, row.source = (rate.gpu_model, rate.per_gpu_hour,
                                                           rate.source)
            row.updated_at = utcnow()
            s.add(row)
            s.commit()
