"""Services (``clusterctl serve``) and their replicas, which are jobs (``Job.service_id``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from clusterctl.parsing import BadInput
from clusterctl.states import ENDED, LIVE, ordered
from clusterctl.store.columns import utcnow
from clusterctl.store.models import Job
from clusterctl.store.service_tables import Service, ServiceKey, ServiceTraffic
from clusterctl.store.users import hash_token


@dataclass(frozen=True)
class Traffic:
    """What a service's endpoint counted (a minute's, or the sum of many)."""

    requests: int = 0
    errors: int = 0
    tokens: int = 0
    replica_s: float = 0.0
    idle_replica_s: float = 0.0

    def __bool__(self) -> bool:
        return any((self.requests, self.errors, self.tokens, self.replica_s))


class ServiceStore:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def create(self, name: str, user: str, team: str, request: dict[str, Any],
               replicas_min: int, replicas_max: int) -> Service:
        """The new service; a running one of that name already is a ``BadInput``."""
        row = Service(name=name, active_name=name, user=user, team=team, request=request,
                      replicas_min=replicas_min, replicas_max=replicas_max,
                      desired=replicas_min, created_at=self.clock())
        try:
            with self.session() as s:
                s.add(row)
                s.commit()
        except IntegrityError:
            raise BadInput("NAME", f"a service named {name!r} is running; stop it first "
                           f"(clusterctl serve stop {name}) or choose another") from None
        return row

    def get(self, service_id: int) -> Service | None:
        with self.session() as s:
            return s.get(Service, service_id)

    def running(self, name: str) -> Service | None:
        with self.session() as s:
            return s.exec(select(Service).where(Service.active_name == name)).first()

    def listing(self, include_stopped: bool = False) -> list[Service]:
        q = select(Service)
        if not include_stopped:
            q = q.where(col(Service.active_name).is_not(None))
        with self.session() as s:
            return list(s.exec(q.order_by(col(Service.id))).all())

    def scale(self, service_id: int, replicas_min: int, replicas_max: int) -> bool:
        return self._update(service_id, replicas_min=replicas_min, replicas_max=replicas_max)

    def set_desired(self, service_id: int, desired: int) -> bool:
        return self._update(service_id, desired=desired)

    def stop(self, service_id: int) -> bool:
        """Stopped: its name is free again; its replicas are cancelled by the controller."""
        return self._update(service_id, active_name=None, stopped_at=self.clock(), desired=0)

    def _update(self, service_id: int, **values: Any) -> bool:
        """Changes a running service (a stopped one stays as it ended)."""
        with self.session() as s:
            result = s.execute(update(Service)
                               .where(col(Service.id) == service_id,
                                      col(Service.active_name).is_not(None))
                               .values(version=Service.version + 1, **values))
            s.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def replicas(self, service_id: int, live_only: bool = True) -> list[Job]:
        """Its replica jobs, oldest first: those not ended (or every one)."""
        q = select(Job).where(Job.service_id == service_id)
        if live_only:
            q = q.where(col(Job.state).not_in(ordered(ENDED)))
        with self.session() as s:
            return list(s.exec(q.order_by(col(Job.id))).all())

    def with_live_replicas(self) -> list[Service]:
        """Stopped services that still have replicas to end."""
        live = select(Job.service_id).where(col(Job.service_id).is_not(None),
                                            col(Job.state).in_(ordered(LIVE)))
        q = select(Service).where(col(Service.active_name).is_(None),
                                  col(Service.id).in_(live))
        with self.session() as s:
            return list(s.exec(q).all())

    def packages_in_use(self) -> frozenset[str]:
        """Packages running services start their replicas from (kept while they run)."""
        return frozenset(p for p in (str(s.request.get("replica", {}).get("package") or "")
                            for s in self.listing()) if p)

    def add_traffic(self, service_id: int, minute_ms: int, counted: Traffic) -> None:
        """Add to a minute's figures (one writer: the controller's keeper)."""
        values = {f.name: getattr(ServiceTraffic, f.name) + getattr(counted, f.name)
                  for f in fields(Traffic)}
        with self.session() as s:
            done = s.execute(update(ServiceTraffic)
                             .where(col(ServiceTraffic.service_id) == service_id,
                                    col(ServiceTraffic.minute_ms) == minute_ms)
                             .values(**values))
            if not done.rowcount:  # type: ignore[attr-defined]
                s.add(ServiceTraffic(service_id=service_id, minute_ms=minute_ms,
                                     **{f.name: getattr(counted, f.name)
                                        for f in fields(Traffic)}))
            s.commit()

    def traffic(self, service_id: int) -> Traffic:
        """Everything its endpoint counted since it started."""
        q = select(*(func.coalesce(func.sum(getattr(ServiceTraffic, f.name)), 0)
                     for f in fields(Traffic))).where(ServiceTraffic.service_id == service_id)
        with self.session() as s:
            row = s.exec(q).one()
        return Traffic(int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4]))

    def new_key(self, service_id: int, by: str) -> str:
        """A new key for the service (shown once: only its hash is kept)."""
        key = f"svc_{secrets.token_urlsafe(32)}"
        with self.session() as s:
            s.add(ServiceKey(key_hash=hash_token(key), service_id=service_id, created_by=by,
                             created_at=self.clock()))
            s.commit()
        return key

    def service_of_key(self, key: str) -> int | None:
        """The service a key opens, or None."""
        with self.session() as s:
            row = s.get(ServiceKey, hash_token(key))
        return row.service_id if row is not None else None
