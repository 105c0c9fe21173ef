"""Users and their API tokens, and installation-wide metadata.

Tokens are 256-bit random strings, so a plain SHA-256 is the right hash: there is nothing to
brute-force, and lookup by hash stays a single indexed query per request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clusterctl.store.jobs import utcnow
from clusterctl.store.models import Meta, NodeToken, User


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str = "cct_") -> str:
    return prefix + secrets.token_urlsafe(32)


class UserExists(ValueError):
    pass


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, team: str, is_admin: bool = False) -> tuple[User, str]:
        """Create a user; returns it with its token, which is never stored or shown again."""
        token = new_token()
        user = User(name=name, team=team, is_admin=is_admin, token_hash=hash_token(token),
                    created_at=utcnow())
        with Session(self.engine, expire_on_commit=False) as s:
            if s.exec(select(User).where(User.name == name)).first() is not None:
                raise UserExists(name)
            s.add(user)
            try:
                s.commit()
            except IntegrityError as e:
                raise UserExists(name) from e
        return user, token

    def rotate(self, name: str) -> str | None:
        """Give an existing user a new token (the old one stops working)."""
        token = new_token()
        with Session(self.engine) as s:
            user = s.exec(select(User).where(User.name == name)).first()
            if user is None:
                return None
            user.token_hash = hash_token(token)
            s.add(user)
            s.commit()
        return token

    def by_token(self, token: str) -> User | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.exec(select(User).where(User.token_hash == hash_token(token))).first()

    def by_name(self, name: str) -> User | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.exec(select(User).where(User.name == name)).first()

    def all(self) -> list[User]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(select(User).order_by(User.name)).all())

    # -- node tokens: what an agent ships samples with ----------------------------------------

    def issue_node_token(self, node: str) -> str:
        """A new token for ``node``'s agent (an older one stops working)."""
        token = new_token("ccn_")
        with Session(self.engine) as s:
            row = s.get(NodeToken, node)
            if row is None:
                row = NodeToken(node=node, token_hash=hash_token(token), created_at=utcnow())
            else:
                row.token_hash, row.created_at = hash_token(token), utcnow()
            s.add(row)
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
