"""Team budgets (pure): the period a budget runs over, the forecast at the period's end, and
its state.

``spent`` is what the cost report charges the team in the period so far (capacity plus energy;
with ``loaded``, its share of idle capacity too), computed by the caller exactly as that report
does; ``forecast`` carries the rate so far to the period's end. A team is ``warning`` from 80%
of its budget and ``over`` from 100%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from clusterctl.parsing import BadInput

PERIODS = ("month", "quarter")
WARN_AT = 0.8
LEVELS = {"ok": 0, "warning": 1, "over": 2}


def parse_amount(text: str | float, field: str = "AMOUNT") -> float:
    raw = str(text).strip().lstrip("$").replace(",", "").replace("_", "")
    try:
        amount = float(raw)
    except ValueError:
        amount = -1.0
    if not (math.isfinite(amount) and 0 < amount < 1e12):
        raise BadInput(field, f"{text!r} must be an amount above 0, such as 10000 or $12,500")
    return amount


def parse_budget_period(text: str) -> str:
    per = text.strip().lower()
    if per not in PERIODS:
        raise BadInput("--per", f"{text!r} is not one of {', '.join(PERIODS)}")
    return per


def period_bounds(now: datetime, per: str) -> tuple[datetime, datetime]:
    """The calendar month or quarter (UTC) holding ``now``."""
    now = now.astimezone(timezone.utc)
    first = now.month if per == "month" else 3 * ((now.month - 1) // 3) + 1
    start = datetime(now.year, first, 1, tzinfo=timezone.utc)
    months = 1 if per == "month" else 3
    year, month = divmod(first - 1 + months, 12)
    return start, datetime(now.year + year, month + 1, 1, tzinfo=timezone.utc)


def period_label(start: datetime, per: str) -> str:
    return f"{start:%Y-%m}" if per == "month" else f"{start.year}-Q{(start.month + 2) // 3}"


@dataclass(frozen=True)
class BudgetStatus:
    team: str
    amount: float
    per: str
    enforce: bool
    loaded: bool
    period: str
    spent: float
    forecast: float
    state: str

    @property
    def share(self) -> float:
        return self.spent / self.amount

    def detail(self) -> str:
        return (f"team {self.team} spent ${self.spent:,.2f} of its ${self.amount:,.2f} "
                f"{self.per}ly budget ({self.share:.0%}) in {self.period}")


def status(team: str, amount: float, per: str, enforce: bool, loaded: bool, spent: float,
           now: datetime) -> BudgetStatus:
    start, end = period_bounds(now, per)
    elapsed = (now - start).total_seconds()
    whole = (end - start).total_seconds()
    forecast = spent * whole / elapsed if elapsed > 0 else spent
    state = "over" if spent >= amount else "warning" if spent >= WARN_AT * amount else "ok"
    return BudgetStatus(team, amount, per, enforce, loaded, period_label(start, per),
                        round(spent, 2), round(forecast, 2), state)
