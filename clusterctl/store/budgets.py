"""Team budgets as set by admins, and which threshold each team was last told of."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select

from clusterctl.store.models import Budget


class BudgetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def all(self) -> list[Budget]:
        with self.session() as s:
            return list(s.exec(select(Budget).order_by(Budget.team)).all())

    def put(self, team: str, amount: float, per: str, enforce: bool, loaded: bool) -> Budget:
        """Set (or replace) a team's budget; a new amount may be told of its thresholds
        again."""
        with self.session() as s:
            row = s.get(Budget, team) or Budget(team=team, amount=amount)
            row.amount, row.per, row.enforce, row.loaded = amount, per, enforce, loaded
            row.notified = row.notified_period = None
            s.add(row)
            s.commit()
            return row

    def remove(self, team: str) -> bool:
        with self.session() as s:
            row = s.get(Budget, team)
            if row is None:
                return False
            s.delete(row)
            s.commit()
            return True

    def mark_notified(self, team: str, state: str, period: str) -> None:
        with self.session() as s:
            row = s.get(Budget, team)
            if row is not None:
                row.notified, row.notified_period = state, period
                s.add(row)
                s.commit()
