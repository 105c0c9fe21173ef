"""Checking what admins type about machines and the site: the pure half of `hardware`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from clusterctl.cost.inventory import (
    hardware_spec,
    parse_fraction,
    parse_inventory_toml,
    parse_life,
    parse_money,
    site_settings,
    updated_spec,
)
from clusterctl.cost.rates import CloudRate, effective_rates, rate_for
from clusterctl.parsing import BadInput

TODAY = date(2026, 11, 22)
GOOD = {"node": "gpu-01", "gpus": "8", "gpu_model": "A100-80GB", "price": "300,000",
        "purchased": "2025-03-01", "life_months": "36mo", "resale": "0.2",
        "monthly_fees": "1500"}


def test_a_machine_as_typed() -> None:
    spec = hardware_spec(GOOD, TODAY)
    assert spec.price == Decimal(300000) and spec.resale == Decimal("0.2")
    assert spec.life_months == 36 and spec.gpus == 8 and spec.purchased == date(2025, 3, 1)
    assert spec.machine().purchased.isoformat() == "2025-03-01T00:00:00+00:00"


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("price", "0", "--price"), ("price", "-5", "--price"), ("price", "abc", "--price"),
    ("price", "nan", "--price"), ("gpus", "0", "--gpus"), ("gpus", "-8", "--gpus"),
    ("gpus", "1.5", "--gpus"), ("life_months", "0", "--life"), ("life_months", "-3", "--life"),
    ("life_months", "3 weeks", "--life"), ("resale", "1.2", "--resale"),
    ("resale", "-0.1", "--resale"), ("resale", "120%", "--resale"),
    ("purchased", "2027-01-01", "--purchased"), ("purchased", "2025-13-01", "--purchased"),
    ("monthly_fees", "-1", "--monthly-fees"), ("gpu_model", "A100/80", "--gpu-model"),
    ("node", "bad node", "NODE"),
])
def test_bad_fields_name_the_flag(field: str, value: str, flag: str) -> None:
    with pytest.raises(BadInput) as e:
        hardware_spec(GOOD | {field: value}, TODAY)
    assert e.value.field == flag
    assert "\n" not in str(e.value)


def test_units_people_type() -> None:
    assert parse_life("3y") == 36 and parse_life(" 48 months ") == 48 and parse_life(24) == 24
    assert parse_fraction("20%") == Decimal("0.2") and parse_fraction(0) == 0
    assert parse_money("$1,500.50", "--x", positive=False) == Decimal("1500.50")
    assert parse_money("0", "--x", positive=False) == 0


def test_set_changes_only_what_is_given_and_checks_the_whole() -> None:
    spec = hardware_spec(GOOD, TODAY)
    changed = updated_spec(spec, {"price": "250000"}, TODAY)
    assert changed.price == 250000 and changed.gpus == 8 and changed.resale == spec.resale
    with pytest.raises(BadInput, match="--resale"):
        updated_spec(spec, {"resale": "2"}, TODAY)


TOML = """\
# two machines
[[machine]]
node = "gpu-01"
gpus = 8
gpu_model = "A100-80GB"
price = 300000
purchased = 2025-03-01
life = "36mo"
resale = 0.2
monthly_fees = 1500

[[machine]]
node = "gpu-02"
gpus = 4
gpu_model = "RTX 4090"
price = "12000"
purchased = "2024-06-15"
life = 24
resale = "10%"
"""


def test_toml_import() -> None:
    specs = parse_inventory_toml(TOML, "rack.toml", TODAY)
    assert [s.node for s in specs] == ["gpu-01", "gpu-02"]
    assert specs[1].monthly_fees == 0 and specs[1].resale == Decimal("0.1")
    assert specs[1].life_months == 24


def test_toml_errors_carry_the_line() -> None:
    with pytest.raises(BadInput, match=r"rack.toml: is not valid TOML: .*line 4"):
        parse_inventory_toml("[[machine]]\nnode = 'a'\ngpus = 8\nprice = = 3\n", "rack.toml",
                             TODAY)
    bad = TOML.replace('price = "12000"', "price = -1")
    with pytest.raises(BadInput) as e:
        parse_inventory_toml(bad, "rack.toml", TODAY)
    assert e.value.field == "rack.toml line 12: price"
    with pytest.raises(BadInput, match="appears twice"):
        parse_inventory_toml(TOML.replace('"gpu-02"', '"gpu-01"'), "rack.toml", TODAY)
    with pytest.raises(BadInput, match="no \\[\\[machine\\]\\]"):
        parse_inventory_toml("", "rack.toml", TODAY)
    with pytest.raises(BadInput, match="not a hardware field") as e:
        parse_inventory_toml(TOML.replace("gpus = 4", "gpu = 4"), "rack.toml", TODAY)
    assert e.value.field == "rack.toml line 12: gpu"


def test_site_settings() -> None:
    s = site_settings({"tariff_per_kwh": "0.21", "pue": "1.2", "currency": "eur"})
    assert (s.tariff_per_kwh, s.pue, s.currency) == (Decimal("0.21"), Decimal("1.2"), "EUR")
    assert site_settings({}).pue == Decimal("1.4")
    for key, value, flag in (("pue", "0.9", "--pue"), ("tariff_per_kwh", "-1", "--tariff"),
                             ("currency", "dollars", "--currency")):
        with pytest.raises(BadInput) as e:
            site_settings({key: value})
        assert e.value.field == flag


def test_cloud_rates_match_models_and_overrides_win() -> None:
    table = effective_rates({})
    assert rate_for("A100", table).per_gpu_hour == Decimal("4.10")  # type: ignore[union-attr]
    assert rate_for("a100-80gb", table).per_gpu_hour == Decimal("5.12")  # type: ignore[union-attr]
    assert rate_for("NVIDIA A100-SXM4-40GB", table).gpu_model == "A100"  # type: ignore[union-attr]
    assert rate_for("NVIDIA GeForce RTX 4090", table).gpu_model == "RTX 4090"  # type: ignore[union-attr]
    assert rate_for("MI300X", table) is None
    mine = effective_rates({"A100": CloudRate("A100", Decimal("2.00"), "our reserved price")})
    assert rate_for("A100", mine).per_gpu_hour == Decimal("2.00")  # type: ignore[union-attr]
    assert all(r.source for r in table.values())
