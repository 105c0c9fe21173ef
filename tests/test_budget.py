"""Budget figures (#20 item 2), without a database: the period, the forecast, the state."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clusterctl.cost.budget import parse_amount, parse_budget_period, period_bounds, status
from clusterctl.parsing import BadInput


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_periods_are_calendar_months_and_quarters() -> None:
    assert period_bounds(utc(2026, 12, 2, 18), "month") == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert period_bounds(utc(2026, 11, 30), "quarter") == (utc(2026, 10, 1), utc(2027, 1, 1))
    assert period_bounds(utc(2026, 2, 14), "quarter") == (utc(2026, 1, 1), utc(2026, 4, 1))


def test_forecast_and_state() -> None:
    # A third into a 30-day month, 3,000 spent: 9,000 by its end at that rate.
    s = status("vision", 10_000, "month", True, False, 3_000, utc(2026, 11, 11))
    assert (s.state, s.forecast, s.period) == ("ok", 9_000, "2026-11")
    assert status("v", 10_000, "month", False, False, 8_000, utc(2026, 11, 11)).state == \
        "warning"
    over = status("v", 10_000, "quarter", True, False, 10_000, utc(2026, 11, 11))
    assert over.state == "over" and over.period == "2026-Q4"
    assert over.detail() == ("team v spent $10,000.00 of its $10,000.00 quarterly budget "
                             "(100%) in 2026-Q4")


@pytest.mark.parametrize("bad", ["0", "-5", "lots", "nan", "inf", "1e13", ""])
def test_amounts_are_positive_dollars(bad: str) -> None:
    with pytest.raises(BadInput):
        parse_amount(bad)
    assert parse_amount("$12,500") == 12_500.0


def test_periods_are_named() -> None:
    assert parse_budget_period("Quarter") == "quarter"
    with pytest.raises(BadInput) as e:
        parse_budget_period("week")
    assert e.value.field == "--per"
