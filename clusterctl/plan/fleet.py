"""The machines a plan is made for: the inventory's, a fleet typed on the command line, and the
purchases and sales proposed (``--add 2x8:H100-80GB@280000/36mo/0.25/1200``, ``--remove
node-3@90000``), each priced as the cost model prices a machine.

A machine typed without a price is priced from typical figures for its model (street prices of
whole servers, per GPU, and each model's board power); they are rough and say so in the output,
and the inventory's own figures always win. Life, resale and fees not given come from the
inventory's machines where it has some (the newest one's), else 36 months, 25 % and $150 a GPU
a month (colocation of a 10 kW server in 2024, about $1,200 a month for 8 GPUs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from clusterctl.cost.inventory import (
    HardwareSpec,
    midnight,
    parse_fraction,
    parse_life,
    parse_money,
)
from clusterctl.cost.model import HOURS_PER_MONTH, Machine, depreciation_to
from clusterctl.cost.rates import by_model, model_key
from clusterctl.gpu_types import parse_fleet
from clusterctl.parsing import BadInput, parse_node_name

# Server street prices per GPU (2024-2025, whole 8-GPU servers divided by 8; a 4090 box of 8
# about $20,000). Rough: override with @PRICE or the inventory.
TYPICAL_PRICE_PER_GPU: dict[str, Decimal] = {
    "H200": Decimal(40_000), "H100": Decimal(35_000), "A10080GB": Decimal(20_000),
    "A100": Decimal(15_000), "A10040GB": Decimal(15_000), "L40S": Decimal(11_000),
    "L40": Decimal(9_000), "A10G": Decimal(4_000), "L4": Decimal(3_500),
    "V100": Decimal(4_000), "T4": Decimal(2_000), "RTX4090": Decimal(2_500),
    "RTX3090": Decimal(1_500),
}
# Board power (TDP) in watts: what a busy GPU draws; an idle one draws about IDLE_SHARE of it.
TYPICAL_POWER_W: dict[str, float] = {
    "H200": 700, "H100": 700, "A100": 400, "L40S": 350, "L40": 300, "A10G": 150, "L4": 72,
    "V100": 300, "T4": 70, "RTX4090": 450, "RTX3090": 350,
}
IDLE_SHARE = 0.15
DEFAULT_POWER_W = 400.0
DEFAULT_LIFE_MONTHS = 36
DEFAULT_RESALE = Decimal("0.25")
DEFAULT_FEES_PER_GPU = Decimal(150)
_SPEC = re.compile(r"^(?P<fleet>[^@]+)(?:@(?P<price>[^/]*)(?:/(?P<life>[^/]*))?"
                   r"(?:/(?P<resale>[^/]*))?(?:/(?P<fees>[^/]*))?)?$")


@dataclass(frozen=True)
class Defaults:
    life_months: int = DEFAULT_LIFE_MONTHS
    resale: Decimal = DEFAULT_RESALE
    fees_per_gpu: Decimal = DEFAULT_FEES_PER_GPU


@dataclass(frozen=True)
class PlanMachine:
    name: str
    gpus: int
    gpu_model: str | None
    price: Decimal | None
    """None: no inventory entry and no model to price it by; its GPUs count, unpriced."""
    life_months: int
    resale: Decimal
    monthly_fees: Decimal
    purchased: date | None = None
    """None for a proposed purchase: it would be new, all of its life ahead."""
    typical: bool = False
    """Priced from the typical figures, not the inventory or the command line."""
    power_w: float | None = None
    """Measured average board power of a busy GPU, where the cluster knows it."""

    def monthly_depreciation(self, today: date) -> Decimal:
        if self.price is None:
            return Decimal(0)
        if self.purchased is not None and _months_between(self.purchased, today) >= \
                self.life_months:
            return Decimal(0)  # written off: it costs its fees and power alone
        return self.price * (1 - self.resale) / self.life_months

    def book_value(self, today: date) -> Decimal | None:
        """Price less straight-line depreciation to ``today``: what a sale is weighed
        against where no sale price is given."""
        if self.price is None:
            return None
        if self.purchased is None:
            return self.price
        m = Machine(self.price, self.resale, self.life_months, self.gpus, self.monthly_fees,
                    midnight(self.purchased))
        return self.price - depreciation_to(m, midnight(today))

    def busy_power_w(self) -> float:
        if self.power_w is not None:
            return self.power_w
        return by_model(TYPICAL_POWER_W, self.gpu_model) or DEFAULT_POWER_W


def _months_between(start: date, end: date) -> float:
    return (end - start).days * 24 / float(HOURS_PER_MONTH)


def defaults_from(inventory: Sequence[HardwareSpec]) -> Defaults:
    if not inventory:
        return Defaults()
    newest = max(inventory, key=lambda h: h.purchased)
    return Defaults(newest.life_months, newest.resale, newest.monthly_fees / newest.gpus)


def from_inventory(specs: Sequence[HardwareSpec], today: date) -> list[PlanMachine]:
    """The machines in service (not sold by ``today``)."""
    return [PlanMachine(h.node, h.gpus, h.gpu_model, h.price, h.life_months, h.resale,
                        h.monthly_fees, h.purchased)
            for h in specs if h.sold_on is None or h.sold_on > today]


def parse_machines(text: str, field: str, defaults: Defaults, *, prefix: str,
                   first: int = 0) -> list[PlanMachine]:
    """``NxG:MODEL[@PRICE[/LIFE[/RESALE[/FEES]]]]``, comma-separated groups: N machines of G
    GPUs each. PRICE is per machine; LIFE as ``36mo`` or ``3y``; FEES per machine a month.
    Without a price, the model's typical price (and without a model, unpriced)."""
    out: list[PlanMachine] = []
    for part in _groups(text):
        m = _SPEC.match(part.strip())
        if not m:
            raise BadInput(field, f"{part.strip()!r} is not NxG:MODEL[@PRICE[/LIFE/RESALE/FEES]]"
                           " (2x8:H100-80GB@280000/36mo/0.25/1200)")
        [(nodes, gpus, model)] = parse_fleet(m["fleet"], field)
        price: Decimal | None
        typical_price = False
        if m["price"] is not None:
            price = parse_money(m["price"], f"{field} @PRICE", positive=True)
        else:
            per_gpu = by_model(TYPICAL_PRICE_PER_GPU, model)
            price = per_gpu * gpus if per_gpu is not None else None
            typical_price = price is not None
        life = parse_life(m["life"], f"{field} /LIFE") if m["life"] else defaults.life_months
        resale = (parse_fraction(m["resale"], f"{field} /RESALE") if m["resale"]
                  else defaults.resale)
        fees = (parse_money(m["fees"], f"{field} /FEES", positive=False) if m["fees"]
                else defaults.fees_per_gpu * gpus)
        for _ in range(nodes):
            out.append(PlanMachine(f"{prefix}{first + len(out) + 1}", gpus, model, price, life,
                                   resale, fees, typical=typical_price))
    return out


def _groups(text: str) -> list[str]:
    """Split at the commas between groups, not those inside a price (``@280,000``)."""
    parts: list[str] = []
    for piece in text.split(","):
        if parts and re.fullmatch(r"\d{3}(?:[/.].*)?", piece.strip()) and "@" in parts[-1]:
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return [p for p in parts if p.strip()] or [text]


@dataclass(frozen=True)
class Sale:
    machine: PlanMachine
    price: Decimal | None
    """What it would fetch: given, else its book value; None for an unpriced machine."""


def parse_removal(text: str, machines: Sequence[PlanMachine], today: date) -> Sale:
    """``NODE[@SALE_PRICE]``: a machine of the fleet, sold for that (else its book value)."""
    name, sep, price_text = text.strip().partition("@")
    node = parse_node_name(name.strip())
    found = next((m for m in machines if m.name == node), None)
    if found is None:
        known = ", ".join(m.name for m in machines[:10]) or "none"
        raise BadInput("--remove", f"{node!r} is not a machine of the fleet (here: {known})")
    price = (parse_money(price_text, "--remove @PRICE", positive=False) if sep
             else found.book_value(today))
    return Sale(found, price)


def without(machines: Sequence[PlanMachine], sales: Sequence[Sale]) -> list[PlanMachine]:
    gone = {s.machine.name for s in sales}
    return [m for m in machines if m.name not in gone]


def with_power(machines: Sequence[PlanMachine], measured: Mapping[str, float]
               ) -> list[PlanMachine]:
    """The machines with the cluster's measured busy power per GPU model (keyed by model
    name), where known."""
    keyed = {model_key(k): v for k, v in measured.items()}
    return [replace(m, power_w=by_model(keyed, m.gpu_model) or m.power_w) for m in machines]
