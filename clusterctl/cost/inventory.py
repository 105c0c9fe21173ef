"""What an admin types about the machines and the site, checked before anything is written.

Pure functions. Each problem is a :class:`BadInput` naming the field (the CLI flag, or the line
of a TOML file) and what is allowed, so that ``hardware add|set|import`` and ``hardware
settings`` print one line, exit 2 and write nothing. The API checks with the same functions.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from clusterctl.cost.model import Machine
from clusterctl.parsing import BadInput, parse_count, parse_node_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_PRICE = Decimal(100_000_000)
MAX_LIFE_MONTHS = 240
MAX_GPUS = 1024
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,63}\Z")
_LIFE_RE = re.compile(r"^\s*(\d+)\s*(mo|months?|y|years?)?\s*$", re.IGNORECASE)
_CURRENCY_RE = re.compile(r"^[A-Z]{3}\Z")


@dataclass(frozen=True)
class HardwareSpec:
    """One machine of the inventory: what it cost and how it is written off."""

    node: str
    gpus: int
    gpu_model: str
    price: Decimal
    purchased: date
    life_months: int
    resale: Decimal
    monthly_fees: Decimal = Decimal(0)
    sold_on: date | None = None
    """Set when the machine is retired: costs stop at the start of that day (UTC)."""
    sold_for: Decimal | None = None

    def machine(self) -> Machine:
        return Machine(price=self.price, resale=self.resale, life_months=self.life_months,
                       gpus=self.gpus, monthly_fees=self.monthly_fees,
                       purchased=midnight(self.purchased),
                       sold=midnight(self.sold_on) if self.sold_on else None,
                       sold_for=self.sold_for)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HardwareSpec:
        """The inverse of :meth:`as_json` (what the API answers), for clients."""
        def money(key: str) -> Decimal | None:
            return None if d.get(key) is None else Decimal(str(d[key]))

        return cls(str(d["node"]), int(d["gpus"]), str(d["gpu_model"]), Decimal(str(d["price"])),
                   date.fromisoformat(d["purchased"]), int(d["life_months"]),
                   Decimal(str(d["resale"])), money("monthly_fees") or Decimal(0),
                   date.fromisoformat(d["sold_on"]) if d.get("sold_on") else None,
                   money("sold_for"))

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["purchased"] = self.purchased.isoformat()
        out["sold_on"] = self.sold_on.isoformat() if self.sold_on else None
        for key in ("price", "resale", "monthly_fees", "sold_for"):
            out[key] = None if out[key] is None else str(out[key])
        return out


def midnight(day: date) -> datetime:
    """The start of ``day`` in UTC: purchases and sales count from there."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


FIELDS = ("node", "gpus", "gpu_model", "price", "purchased", "life_months", "resale",
          "monthly_fees", "sold_on", "sold_for")
OPTIONAL = ("monthly_fees", "sold_on", "sold_for")
FLAG = {"node": "NODE", "gpus": "--gpus", "gpu_model": "--gpu-model", "price": "--price",
        "purchased": "--purchased", "life_months": "--life", "resale": "--resale",
        "monthly_fees": "--monthly-fees", "sold_on": "--sold-on", "sold_for": "--sold-for"}


def parse_money(text: Any, field: str, *, positive: bool) -> Decimal:
    """An amount such as ``300000``, ``300,000`` or ``1500.50``: positive for prices, zero
    allowed for fees; no float ever touches it."""
    raw = str(text).strip().replace(",", "").replace("_", "").lstrip("$")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    allowed = "a positive amount" if positive else "an amount of 0 or more"
    if not value.is_finite() or value < 0 or (positive and value == 0) or value > MAX_PRICE:
        raise BadInput(field, f"{text!r} is not {allowed} (at most {MAX_PRICE:,})")
    return value


def parse_fraction(text: Any, field: str = "--resale") -> Decimal:
    """A fraction from 0 to 1 (``0.2``) or a percentage (``20%``)."""
    raw = str(text).strip()
    scale = Decimal(1)
    if raw.endswith("%"):
        raw, scale = raw[:-1].strip(), Decimal(100)
    try:
        value = Decimal(raw) / scale
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
        raise BadInput(field, f"{text!r} is not a fraction from 0 to 1 (such as 0.2 or 20%)")
    return value


def parse_life(text: Any, field: str = "--life") -> int:
    """A machine's life in months: ``36mo``, ``36``, ``3y``."""
    m = _LIFE_RE.match(str(text))
    months = 0
    if m:
        months = int(m.group(1)) * (12 if (m.group(2) or "mo").lower().startswith("y") else 1)
    if not 1 <= months <= MAX_LIFE_MONTHS:
        raise BadInput(field, f"{text!r} is not a life from 1 to {MAX_LIFE_MONTHS} months "
                       "(such as 36mo or 3y)")
    return months


def parse_past_date(text: Any, today: date, field: str = "--purchased") -> date:
    if isinstance(text, datetime):
        value = text.date()
    elif isinstance(text, date):
        value = text
    else:
        try:
            value = date.fromisoformat(str(text).strip())
        except ValueError:
            raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD)") from None
    if value > today:
        raise BadInput(field, f"{value.isoformat()} is in the future (today is "
                       f"{today.isoformat()})")
    return value


def parse_gpu_model(text: Any, field: str = "--gpu-model") -> str:
    raw = str(text).strip()
    if not _MODEL_RE.match(raw):
        raise BadInput(field, f"{text!r} must be a GPU model name such as A100-80GB: 1-64 "
                       "letters, digits, spaces, '.', '_', '-', '+', '(' or ')'")
    return raw


def hardware_spec(values: Mapping[str, Any], today: date,
                  flag: Mapping[str, str] = FLAG) -> HardwareSpec:
    """A checked :class:`HardwareSpec` from raw values (CLI strings or TOML values); ``flag``
    names each field the way the person typed it."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise BadInput(unknown[0], f"is not a hardware field (allowed: {', '.join(FIELDS)})")
    missing = [f for f in FIELDS if f not in OPTIONAL and values.get(f) in (None, "")]
    if missing:
        raise BadInput(flag[missing[0]], "is required")
    purchased = parse_past_date(values["purchased"], today, flag["purchased"])
    sold_on, sold_for = _sale(values, purchased, today, flag)
    return HardwareSpec(
        node=parse_node_name(str(values["node"]), flag["node"]),
        gpus=parse_count(values["gpus"], flag["gpus"], MAX_GPUS),
        gpu_model=parse_gpu_model(values["gpu_model"], flag["gpu_model"]),
        price=parse_money(values["price"], flag["price"], positive=True),
        purchased=purchased,
        life_months=parse_life(values["life_months"], flag["life_months"]),
        resale=parse_fraction(values["resale"], flag["resale"]),
        monthly_fees=parse_money(values.get("monthly_fees") or 0, flag["monthly_fees"],
                                 positive=False),
        sold_on=sold_on,
        sold_for=sold_for,
    )


def _sale(values: Mapping[str, Any], purchased: date, today: date,
          flag: Mapping[str, str]) -> tuple[date | None, Decimal | None]:
    """A sale is a date and a price together, on or after the purchase, not in the future."""
    on, price = values.get("sold_on"), values.get("sold_for")
    if on in (None, "") and price in (None, ""):
        return None, None
    if price in (None, ""):
        raise BadInput(flag["sold_for"], "is required with a sale date (0 if it was scrapped)")
    if on in (None, ""):
        raise BadInput(flag["sold_on"], "is required with a sale price")
    sold_on = parse_past_date(on, today, flag["sold_on"])
    if sold_on < purchased:
        raise BadInput(flag["sold_on"], f"{sold_on.isoformat()} is before the purchase date "
                       f"{purchased.isoformat()}")
    return sold_on, parse_money(price, flag["sold_for"], positive=False)


def updated_spec(current: HardwareSpec, changes: Mapping[str, Any], today: date) -> HardwareSpec:
    """``hardware set``: the current record with ``changes`` applied, checked as a whole."""
    if "node" in changes and changes["node"] != current.node:
        raise BadInput("NODE", "cannot be changed; remove and add the machine instead")
    merged = current.as_json() | {k: v for k, v in changes.items() if v is not None}
    return hardware_spec(merged, today)


def _toml_lines(text: str, table: str) -> list[int]:
    """Line numbers (1-based) of each ``[[table]]`` header, so an error in the n-th machine can
    point at its line; tomllib keeps no positions once parsed."""
    header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
    return [i + 1 for i, line in enumerate(text.splitlines()) if header.match(line)]


def parse_inventory_toml(text: str, name: str, today: date) -> list[HardwareSpec]:
    """Machines from a TOML file of ``[[machine]]`` tables (keys as in :data:`FIELDS`, ``life``
    accepted for ``life_months``). All or nothing: the first problem is raised with its line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(name, f"is not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"machine"})
    if extra:
        raise BadInput(name, f"has a top-level key {extra[0]!r}; machines go in [[machine]] "
                       "tables")
    machines = doc.get("machine")
    if not isinstance(machines, list) or not machines:
        raise BadInput(name, "has no [[machine]] tables")
    lines = _toml_lines(text, "machine")
    specs: list[HardwareSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(machines):
        where = f"{name} line {lines[i]}" if i < len(lines) else f"{name} machine {i + 1}"
        values = dict(raw)
        if "life" in values:
            values["life_months"] = values.pop("life")
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise BadInput(f"{where}: {unknown[0]}", "is not a hardware field (allowed: "
                           f"{', '.join(FIELDS)}; life for life_months)")
        flags = {f: f"{where}: {f}" for f in FIELDS}
        spec = hardware_spec(values, today, flags)
        if spec.node in seen:
            raise BadInput(f"{where}: node", f"{spec.node!r} appears twice in the file")
        seen.add(spec.node)
        specs.append(spec)
    return specs


# -- site settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSettings:
    """What energy costs at this site. Defaults: a US commercial tariff ($0.15/kWh, as in
    PRODUCT.md's worked example) and a typical colocation PUE of 1.4."""

    tariff_per_kwh: Decimal = Decimal("0.15")
    pue: Decimal = Decimal("1.4")
    currency: str = "USD"

    def as_json(self) -> dict[str, str]:
        return {"tariff_per_kwh": str(self.tariff_per_kwh), "pue": str(self.pue),
                "currency": self.currency}


def site_settings(values: Mapping[str, Any], base: SiteSettings | None = None) -> SiteSettings:
    base = base or SiteSettings()
    out = base
    if values.get("tariff_per_kwh") is not None:
        tariff = parse_money(values["tariff_per_kwh"], "--tariff", positive=False)
        if tariff > 100:
            raise BadInput("--tariff", f"{values['tariff_per_kwh']!r} is not a price per kWh "
                           "from 0 to 100")
        out = replace(out, tariff_per_kwh=tariff)
    if values.get("pue") is not None:
        try:
            pue = Decimal(str(values["pue"]).strip())
        except InvalidOperation:
            pue = Decimal("NaN")
        if not pue.is_finite() or not Decimal(1) <= pue <= Decimal(5):
            raise BadInput("--pue", f"{values['pue']!r} is not a PUE from 1.0 to 5.0")
        out = replace(out, pue=pue)
    if values.get("currency") is not None:
        code = str(values["currency"]).strip().upper()
        if not _CURRENCY_RE.match(code):
            raise BadInput("--currency", f"{values['currency']!r} is not a 3-letter currency "
                           "code such as USD or EUR")
        out = replace(out, currency=code)
    return out


def parse_rate(text: Any, field: str = "RATE") -> Decimal:
    value = parse_money(text, field, positive=True)
    if value > 1000:
        raise BadInput(field, f"{text!r} is not a price per GPU-hour from 0 to 1000")
    return value
