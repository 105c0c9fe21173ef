"""The audit trail: who did what as an admin, and when (``clusterctl admin audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from clusterctl.store.columns import utcnow
from clusterctl.store.models import AuditEvent


class AuditStore:
    def __init__(self, engine: Engine, clock: Any = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def record(self, actor: str, action: str, target: str, detail: str | None = None) -> None:
        with Session(self.engine) as s:
            s.add(AuditEvent(at=self.clock(), actor=actor, action=action, target=target[:255],
                             detail=detail[:1000] if detail else None))
            s.commit()

    def since(self, start: datetime, limit: int = 10_000) -> list[AuditEvent]:
        q = (select(AuditEvent).where(col(AuditEvent.at) >= start)
             .order_by(col(AuditEvent.id)).limit(limit))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(q).all())
