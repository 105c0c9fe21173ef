"""Webhook URLs (a user's, a team's) and the notifier's place in the job history.

The notifier reads job ends from the history (``JobEvent``), the record every transition
already writes in its own transaction, so no end is missed however the controller stops; it
keeps the id of the last event it read here, and a controller that restarts goes on from it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from clusterctl.store.models import Job, JobEvent, NotifyCursor, TeamNotify, User


class NotifyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def cursor(self) -> int:
        """The last event read; on the first start, the newest event (history is not news)."""
        with self.session() as s:
            row = s.get(NotifyCursor, 1)
            if row is not None:
                return row.last_event_id
            last = s.exec(select(func.max(JobEvent.id))).one() or 0
            s.add(NotifyCursor(id=1, last_event_id=int(last)))
            s.commit()
            return int(last)

    def advance(self, event_id: int) -> None:
        with self.session() as s:
            row = s.get(NotifyCursor, 1)
            if row is None:
                s.add(NotifyCursor(id=1, last_event_id=event_id))
            elif event_id > row.last_event_id:
                row.last_event_id = event_id
                s.add(row)
            s.commit()

    def events_after(self, event_id: int, states: list[str], limit: int = 500,
                     before: datetime | None = None) -> list[tuple[JobEvent, Job]]:
        """The next events into ``states``, oldest first, with their jobs; with ``before``,
        only those stamped earlier. On PostgreSQL ids are handed out at insert and become
        visible at commit, so a lower id can appear after a higher one was read: events are
        read once they are old enough for every transaction of their time to have committed,
        and the cursor never passes one still to come."""
        q = (select(JobEvent, Job).join(Job, col(Job.id) == col(JobEvent.job_id))
             .where(col(JobEvent.id) > event_id, col(JobEvent.state).in_(states))
             .order_by(col(JobEvent.id)).limit(limit))
        if before is not None:
            q = q.where(col(JobEvent.at) < before)
        with self.session() as s:
            return [(e, j) for e, j in s.exec(q).all()]

    def last_event(self) -> int:
        with self.session() as s:
            return int(s.exec(select(func.max(JobEvent.id))).one() or 0)

    def urls(self, users: set[str], teams: set[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The URLs of these users and teams that have one."""
        with self.session() as s:
            by_user = {u.name: u.notify_url for u in s.exec(
                select(User).where(col(User.name).in_(sorted(users)))).all() if u.notify_url}
            by_team = {t.team: t.url for t in s.exec(
                select(TeamNotify).where(col(TeamNotify.team).in_(sorted(teams)))).all()}
        return by_user, by_team

    def set_user_url(self, name: str, url: str | None) -> bool:
        with self.session() as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is None:
                return False
            user.notify_url = url
            s.add(user)
            s.commit()
            return True

    def team_url(self, team: str) -> str | None:
        with self.session() as s:
            row = s.get(TeamNotify, team)
            return row.url if row is not None else None

    def set_team_url(self, team: str, url: str | None) -> None:
        with self.session() as s:
            row = s.get(TeamNotify, team)
            if url is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(TeamNotify(team=team, url=url))
            else:
                row.url = url
                s.add(row)
            s.commit()
