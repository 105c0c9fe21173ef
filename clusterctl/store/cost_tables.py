"""Tables of what the hardware cost: machines with their price and life, site settings
(power price, PUE), and the cloud rates owning is compared with."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Column,
    Date,
)
from sqlmodel import Field, SQLModel

from clusterctl.store.columns import DecimalText, money_column, time_column


class Hardware(SQLModel, table=True):
    """A machine of the inventory, keyed by the node name Ray and the agent use."""

    node: str = Field(primary_key=True, max_length=255)
    gpus: int
    gpu_model: str = Field(max_length=64)
    price: Decimal = money_column()
    purchased: date = Field(sa_column=Column(Date(), nullable=False))
    life_months: int
    resale: Decimal = money_column()
    """Fraction of the price expected back at the end of the life."""
    monthly_fees: Decimal = money_column()
    sold_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    """Set when the machine was sold (retired), with ``sold_for``."""
    sold_for: Decimal | None = Field(default=None, sa_column=Column(DecimalText(),
                                                                     nullable=True))
    updated_at: datetime = time_column(nullable=False)


class SiteSetting(SQLModel, table=True):
    """Energy tariff, PUE, currency: one row per setting set by an admin (defaults in code)."""

    __tablename__ = "site_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=64)


class CloudRateRow(SQLModel, table=True):
    """An admin's cloud rate for a GPU model, on top of the documented defaults."""

    __tablename__ = "cloud_rate"

    model_key: str = Field(primary_key=True, max_length=64)
    gpu_model: str = Field(max_length=64)
    per_gpu_hour: Decimal = money_column()
    source: str = Field(max_length=300)
    updated_at: datetime = time_column(nullable=False)
