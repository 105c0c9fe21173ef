"""Budgets watched (#20 item 2) on SQLite and PostgreSQL: each threshold (80%, 100%) told once
per period to a real webhook over HTTP, through a controller restart; an enforced budget over
its amount holds the team's new jobs and raising it releases them; a new period starts over.

``spent`` here is a table of amounts: that the controller's is what the cost report charges is
the end-to-end test's (test_notify_e2e.py) to show, on a live cluster."""

from __future__ import annotations

from datetime import datetime, timezone

from webhook import Hook

from clusterctl.controller.budgets import BudgetWatch
from clusterctl.controller.notifier import Notifier
from clusterctl.store import make_engine, migrate
from clusterctl.store.budgets import BudgetStore
from clusterctl.store.notify import NotifyStore


def test_thresholds_are_told_once_a_period_and_enforcement_holds(db_url: str,
                                                                 hook: Hook) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    store = BudgetStore(engine)
    notifier = Notifier(NotifyStore(engine), lambda job_id: None, attempts=2)
    spent = {"ml": 0.0, "vision": 0.0}
    now = [datetime(2026, 11, 15, tzinfo=timezone.utc)]

    def watch() -> BudgetWatch:  # what a controller starts with, on this database
        return BudgetWatch(store, lambda team, start, at, loaded: spent[team],
                           lambda team, body: notifier.send(f"{hook.url}/{team}", body),
                           clock=lambda: now[0])

    w = watch()
    store.put("ml", 1000.0, "month", enforce=True, loaded=False)
    store.put("vision", 500.0, "quarter", enforce=False, loaded=False)

    spent.update(ml=790.0, vision=100.0)
    assert {s.team: s.state for s in w.refresh()} == {"ml": "ok", "vision": "ok"}
    spent["ml"] = 810.0
    assert {s.team: s.state for s in w.refresh()} == {"ml": "warning", "vision": "ok"}
    [warned] = hook.at("/ml", "budget_warning")
    assert warned["team"] == "ml" and warned["spent"] == 810.0 and warned["period"] == "2026-11"
    assert "has used 80% of its $1,000.00 monthly budget" in warned["text"]
    assert w.holds() == {} and w.notes(["ml"]) == [
        "team ml spent $810.00 of its $1,000.00 monthly budget (81%) in 2026-11"]

    w = watch()  # a restart: what was told is in the database, not told again
    spent["ml"] = 990.0
    w.refresh()
    spent["ml"] = 1200.0
    w.refresh()
    [over] = hook.at("/ml", "budget_over")
    assert "its new jobs wait until the budget is raised" in over["text"]
    assert list(w.holds()) == ["ml"] and "(120%)" in w.holds()["ml"]
    spent["vision"] = 600.0  # over, not enforced: told, nothing held
    w.refresh()
    hook.at("/vision", "budget_over")
    assert list(w.holds()) == ["ml"]

    store.put("ml", 5000.0, "month", enforce=True, loaded=False)  # raised: released
    assert {s.team: s.state for s in w.refresh()}["ml"] == "ok" and w.holds() == {}
    now[0] = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)  # a new month (same quarter)
    spent.update(ml=4100.0, vision=650.0)
    w.refresh()
    notifier.pool.shutdown(wait=True)  # every delivery made
    told = [(path, body["event"], body["period"]) for path, body in hook.got]
    assert sorted(told) == [("/ml", "budget_over", "2026-11"),
                            ("/ml", "budget_warning", "2026-11"),
                            ("/ml", "budget_warning", "2026-12"),
                            ("/vision", "budget_over", "2026-Q4")]  # once each, nothing more
