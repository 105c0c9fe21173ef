"""Users and their API tokens, and installation-wide metadata.

Tokens are 256-bit random strings, so a plain SHA-256 is the right hash: there is nothing to
brute-force, and lookup by hash stays a single indexed query per request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clusterctl.store.columns import utcnow
from clusterctl.store.models import AuditEvent, Meta, NodeToken, User


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str = "cct_") -> str:
    return prefix + secrets.token_urlsafe(32)


class UserExists(ValueError):
    pass


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, team: str, is_admin: bool = False,
            expires_at: datetime | None = None,
            other_teams: list[str] | None = None,
            unix_user: str | None = None) -> tuple[User, str]:
        """Create a user (or bring back a removed one); returns it with its token, which is
        never stored or shown again."""
        token = new_token()
        with Session(self.engine, expire_on_commit=False) as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is not None and user.removed_at is None:
                raise UserExists(name)
            if user is None:
                user = User(name=name, team=team, created_at=utcnow(), token_hash="")
            user.team, user.is_admin, user.expires_at = team, is_admin, expires_at
            user.other_teams = [t for t in other_teams or [] if t != team] or None
            user.unix_user = unix_user if unix_user != name else None
            user.token_hash, user.removed_at = hash_token(token), None
            s.add(user)
            try:
                s.commit()
            except IntegrityError as e:
                raise UserExists(name) from e
        return user, token

    def rotate(self, name: str, expires_at: datetime | None = None) -> str | None:
        """Give an existing user a new token (the old one stops working at once)."""
        token = new_token()
        with Session(self.engine) as s:
            user = s.exec(select(User).where(User.name == name,
                                             col(User.removed_at).is_(None))).first()
            if user is None:
                return None
            user.token_hash, user.expires_at = hash_token(token), expires_at
            s.add(user)
            s.commit()
        return token

    def change(self, name: str, teams: list[str] | None = None,
               unix_user: str | None = None) -> User | None:
        """The user's teams (the first their default) and Unix account, where given; None if
        there is no such user."""
        with Session(self.engine, expire_on_commit=False) as s:
            user = s.exec(select(User).where(User.name == name,
                                             col(User.removed_at).is_(None))).first()
            if user is None:
                return None
            if teams:
                user.team, user.other_teams = teams[0], teams[1:] or None
            if unix_user is not None:
                user.unix_user = unix_user if unix_user != name else None
            s.add(user)
            s.commit()
            return user

    def remove(self, name: str) -> bool:
        """Refuse the user's requests from now on (the row stays for jobs and the audit trail).
        False if there is no such user."""
        with Session(self.engine) as s:
            user = s.exec(select(User).where(User.name == name,
                                             col(User.removed_at).is_(None))).first()
            if user is None:
                return False
            user.removed_at = utcnow()
            user.token_hash = hash_token(new_token())  # nothing anyone holds matches it
            s.add(user)
            s.commit()
        return True

    def by_token(self, token: str) -> User | None:
        """The user a token belongs to, unless removed (an expired one is returned: the
        caller says it expired)."""
        with Session(self.engine, expire_on_commit=False) as s:
            return s.exec(select(User).where(User.token_hash == hash_token(token),
                                             col(User.removed_at).is_(None))).first()

    def by_name(self, name: str) -> User | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.exec(select(User).where(User.name == name,
                                             col(User.removed_at).is_(None))).first()

    def all(self) -> list[User]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(select(User).where(col(User.removed_at).is_(None))
                               .order_by(User.name)).all())

    # -- node tokens: what an agent ships samples with ----------------------------------------

    def issue_node_token(self, node: str, actor: str) -> str:
        """A new token for ``node``'s agent (an older one stops working), and the audit row
        saying ``actor`` issued it, together: every path that issues one (the API, ``up``,
        ``admin node-token --direct``) leaves the same trail."""
        token = new_token("ccn_")
        now = utcnow()
        with Session(self.engine) as s:
            row = s.get(NodeToken, node)
            if row is None:
                row = NodeToken(node=node, token_hash=hash_token(token), created_at=now)
            else:
                row.token_hash, row.created_at = hash_token(token), now
            s.add(row)
            s.add(AuditEvent(at=now, actor=actor, action="node.token", target=node[:255]))
            s.commit()
        return token

    def node_for_token(self, token: str) -> str | None:
        with Session(self.engine) as s:
            row = s.exec(select(NodeToken).where(NodeToken.token_hash == hash_token(token)))
            found = row.first()
            return found.node if found else None


def installation_id(engine: Engine) -> str:
    """A random id made once per database; it names this installation's Ray namespace so two
    installations sharing a Ray cluster (or a test suite) never see each other's runners."""
    with Session(engine) as s:
        row = s.get(Meta, "installation_id")
        if row is not None:
            return row.value
        s.add(Meta(key="installation_id", value=uuid.uuid4().hex[:12]))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
    with Session(engine) as s:
        row = s.get(Meta, "installation_id")
        assert row is not None
        return row.value
