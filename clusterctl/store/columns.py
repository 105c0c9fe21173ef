"""Column types every table uses: times kept in UTC, 64-bit ids that SQLite still
autoincrements, money as exact decimal text."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    String,
    TypeDecorator,
)
from sqlmodel import Field


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend: SQLite keeps no zone, so values are stored
    as naive UTC and given their zone back on the way out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def time_column(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


BIG_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def big_column(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(BigInteger(), nullable=nullable))


# -- cost basis -------------------------------------------------------------------------------
# Money is stored as decimal text: SQLite has no exact decimal type, and the cost model promises
# sums to the cent on both backends.


class DecimalText(TypeDecorator):
    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


def money_column() -> Any:
    return Field(sa_column=Column(DecimalText(), nullable=False))


def utcnow() -> datetime:
    """Now, in UTC: every time the store writes is aware and in UTC."""
    return datetime.now(timezone.utc)
