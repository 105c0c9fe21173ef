"""Engine creation and migrations.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so that a writer takes the write
lock up front and concurrent writers queue on ``busy_timeout`` instead of failing mid-transaction
with "database is locked". PostgreSQL uses the same code through psycopg 3.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlmodel import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"

UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
"""What the database raises while it is down or unreachable (refused connections, a dropped
server, a full pool, SQLite's lock wait running out): a moment to wait, not a bug. The API
answers 503 for them, and the scheduler loop holds off."""


def ping(engine: Engine) -> str | None:
    """None when the database answers a trivial query, else why it does not."""
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
    except UNAVAILABLE as e:
        return str(getattr(e, "orig", e) or e).strip().splitlines()[0][:200]
    return None


DRAIN_LOCK = 0x636C6472  # "cldr"
"""The PostgreSQL advisory lock a placement and a drain both take: a drain waits for a
placement in flight, and a placement after it sees it (SQLite's single writer does the
same by itself)."""


def lock_drains(session: Any) -> None:
    """Serialize this transaction with drains (see ``DRAIN_LOCK``)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DRAIN_LOCK})


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as people write them; use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=False
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the SQLAlchemy
            # docs, "Serializable isolation / Savepoints / Transactional DDL").
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(url: str, to: str = "head") -> None:
    """Bring the schema to the newest revision (or ``to``); safe to call on every start."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    command.upgrade(cfg, to)


def revision(url: str) -> str | None:
    """The schema's current revision (None: an empty database, never migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


@contextmanager
def scratch_database(base_url: str, prefix: str = "scratch") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``base_url``, dropped (with its
    connections) afterwards: what the tests and benchmarks run against, one each."""
    url = make_url(normalize_url(base_url))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
