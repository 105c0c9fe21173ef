"""The cost basis in SQLite and PostgreSQL: money comes back exactly as it went in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from clusterctl.cost.inventory import HardwareSpec, SiteSettings
from clusterctl.cost.rates import CloudRate
from clusterctl.store import CostStore, HardwareExists, make_engine, migrate

SPEC = HardwareSpec(node="gpu-01", gpus=8, gpu_model="A100-80GB", price=Decimal("299999.99"),
                    purchased=date(2025, 3, 1), life_months=36, resale=Decimal("0.2"),
                    monthly_fees=Decimal("1500.10"))


def test_inventory_round_trip(db_url: str) -> None:
    migrate(db_url)
    store = CostStore(make_engine(db_url))
    store.add(SPEC)
    with pytest.raises(HardwareExists):
        store.add(SPEC)
    assert store.machine("gpu-01") == SPEC and store.machine("nope") is None
    other = HardwareSpec(node="gpu-02", gpus=4, gpu_model="RTX 4090", price=Decimal(12000),
                         purchased=date(2024, 6, 15), life_months=24, resale=Decimal("0.1"))
    cheaper = HardwareSpec(**{**SPEC.__dict__, "price": Decimal("250000.01")})
    assert store.put([cheaper, other]) == (1, 1)
    assert store.machines() == [cheaper, other]

    assert store.site() == SiteSettings()
    store.set_site(SiteSettings(Decimal("0.2123"), Decimal("1.25"), "EUR"))
    assert store.site() == SiteSettings(Decimal("0.2123"), Decimal("1.25"), "EUR")
    store.set_rate(CloudRate("A100-80GB", Decimal("3.333"), "reserved"))
    store.set_rate(CloudRate("a100 80gb", Decimal("3.5"), "reserved, renewed"))
    assert store.rate_overrides() == {
        "A10080GB": CloudRate("a100 80gb", Decimal("3.5"), "reserved, renewed")}
