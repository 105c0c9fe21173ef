"""Team budgets, watched: what each team spent this period (as the cost report charges it),
the thresholds it crossed (told once per period, to the team's and the cluster's webhooks and
the log), and which teams' new jobs wait because they are over an enforced budget.

A background thread refreshes the figures (every ``refresh_s``); the scheduler reads only
what it last found, so a pass never waits on a report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from clusterctl.controller.background import Periodic
from clusterctl.cost.budget import LEVELS, BudgetStatus, period_bounds, status
from clusterctl.store.budgets import BudgetStore

log = logging.getLogger(__name__)

Spent = Callable[[str, datetime, datetime, bool], float]
"""(team, period start, now, loaded) → what the cost report charges the team."""


class BudgetWatch(Periodic):
    name = "budgets"
    first_at_start = True

    def __init__(self, store: BudgetStore, spent: Spent,
                 tell: Callable[[str, dict[str, Any]], None], refresh_s: float = 60.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        super().__init__(refresh_s)
        self.store, self.spent, self.tell, self.clock = store, spent, tell, clock
        self._last: list[BudgetStatus] = []
        self._lock = threading.Lock()

    def tick(self) -> None:
        self.refresh()  # the database away: the last figures stand until it is back

    def refresh(self) -> list[BudgetStatus]:
        """Every budget's figures now; tells each team of a threshold it newly crossed."""
        now = self.clock()
        found = []
        for b in self.store.all():
            start, _ = period_bounds(now, b.per)
            spent = self.spent(b.team, start, now, b.loaded)
            s = status(b.team, b.amount, b.per, b.enforce, b.loaded, spent, now)
            found.append(s)
            told = b.notified if b.notified_period == s.period else "ok"
            if LEVELS[s.state] > LEVELS.get(told or "ok", 0):
                self._tell(s)
                self.store.mark_notified(b.team, s.state, s.period)
        with self._lock:
            self._last = found
        return found

    def _tell(self, s: BudgetStatus) -> None:
        what = "is over" if s.state == "over" else "has used 80% of"
        text = (f"clusterctl: team {s.team} {what} its ${s.amount:,.2f} {s.per}ly budget: "
                f"${s.spent:,.2f} spent in {s.period}, ${s.forecast:,.2f} forecast"
                + ("; its new jobs wait until the budget is raised" if s.enforce
                   and s.state == "over" else ""))
        log.warning("%s", text.removeprefix("clusterctl: "))
        self.tell(s.team, {"text": text, "event": f"budget_{s.state}", "team": s.team,
                           "amount": s.amount, "spent": s.spent, "forecast": s.forecast,
                           "state": s.state, "period": s.period})

    def last(self) -> list[BudgetStatus]:
        with self._lock:
            return list(self._last)

    def holds(self) -> dict[str, str]:
        """Teams over an enforced budget, with why their jobs wait."""
        return {s.team: s.detail() for s in self.last() if s.enforce and s.state == "over"}

    def notes(self, teams: list[str]) -> list[str]:
        """What these teams' users are told with each submit and listing."""
        return [s.detail() for s in self.last() if s.team in teams and s.state != "ok"]
