"""Drained nodes: the admin's "no new jobs here" marks, read by the scheduler every pass."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from clusterctl.store.columns import utcnow
from clusterctl.store.db import lock_drains
from clusterctl.store.models import NodeDrain


class NodeStore:
    def __init__(self, engine: Engine, clock: Any = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def drained(self) -> dict[str, NodeDrain]:
        with Session(self.engine, expire_on_commit=False) as s:
            return {d.node: d for d in s.exec(select(NodeDrain)).all()}

    def drain(self, node: str, by: str, reason: str | None) -> NodeDrain:
        """Drain ``node`` (again: the newer reason and time replace the old)."""
        with Session(self.engine, expire_on_commit=False) as s:
            lock_drains(s)
            row = s.get(NodeDrain, node) or NodeDrain(node=node, by=by, at=self.clock())
            row.by, row.reason, row.at = by, reason, self.clock()
            s.add(row)
            s.commit()
            return row

    def undrain(self, node: str) -> bool:
        """False if the node was not drained."""
        with Session(self.engine) as s:
            row = s.get(NodeDrain, node)
            if row is None:
                return False
            s.delete(row)
            s.commit()
            return True
