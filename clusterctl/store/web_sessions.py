"""The dashboard's sign-ins. A session is a random value in an HttpOnly cookie; the database
keeps its SHA-256 (as for tokens: a stolen database signs nobody in), its user, the value forms
must carry back (anti-forgery) and its expiry. Sign-out deletes the row, so a copied cookie
stops working at once; sessions outlive a controller restart."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from clusterctl.store.columns import utcnow
from clusterctl.store.models import WebSession
from clusterctl.store.users import hash_token


@dataclass(frozen=True)
class SignedIn:
    user: str
    csrf: str
    """What each form of this session posts back: a cross-site page cannot read it."""
    expires_at: datetime


class WebSessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, user: str, ttl: timedelta) -> tuple[str, SignedIn]:
        """A new session for ``user``: (the cookie's value, what it signs in). Expired
        sessions are dropped on the way."""
        value, now = secrets.token_urlsafe(32), utcnow()
        row = WebSession(id_hash=hash_token(value), user=user, csrf=secrets.token_urlsafe(32),
                         created_at=now, expires_at=now + ttl)
        with Session(self.engine, expire_on_commit=False) as s:
            s.exec(delete(WebSession).where(col(WebSession.expires_at) <= now))
            s.add(row)
            s.commit()
        return value, SignedIn(row.user, row.csrf, row.expires_at)

    def find(self, value: str) -> SignedIn | None:
        """Who a cookie signs in, unless the session ended or expired."""
        with Session(self.engine) as s:
            row = s.exec(select(WebSession).where(WebSession.id_hash == hash_token(value),
                                                  col(WebSession.expires_at) > utcnow())).first()
            return None if row is None else SignedIn(row.user, row.csrf, row.expires_at)

    def close(self, value: str) -> None:
        with Session(self.engine) as s:
            s.exec(delete(WebSession).where(col(WebSession.id_hash) == hash_token(value)))
            s.commit()
