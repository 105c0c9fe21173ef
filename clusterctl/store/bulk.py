"""Rows written in bulk, straight into their tables: the synthetic history the demo and the
year-long report benchmark load (``cli/demo_history.py``), tens of thousands of rows at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, insert, text

__all__ = ["Engine", "insert_rows"]

BATCH = 20_000


def insert_rows(engine: Engine, tables: Sequence[tuple[Any, list[dict[str, Any]]]]) -> None:
    """Each (model, rows) in one transaction. Rows that carry their own ids leave
    PostgreSQL's sequences behind: they are moved past the largest id after."""
    with engine.begin() as c:
        for model, rows in tables:
            table = model.__table__
            for i in range(0, len(rows), BATCH):
                c.execute(insert(table), rows[i:i + BATCH])
        if engine.dialect.name == "postgresql":
            for model, rows in tables:
                name = model.__tablename__
                if rows and "id" in rows[0]:
                    c.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                   f"(SELECT coalesce(max(id), 1) FROM {name}))"))
