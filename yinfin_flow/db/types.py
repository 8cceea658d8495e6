"""Column types that keep money exact and time in UTC on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

from yinfin_flow.domain.money import STORAGE_PLACES

_SCALE = Decimal(10) ** STORAGE_PLACES


class Amount(TypeDecorator[Decimal]):
    """A money amount: ``Numeric(20, 4)`` on PostgreSQL.

    SQLite has no exact decimal type (NUMERIC affinity turns values into binary
    floats), so there the amount is stored as a 64-bit integer of 1/10,000 units:
    exact, and ``SUM()`` stays exact too.
    """

    impl = Numeric(20, STORAGE_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, STORAGE_PLACES, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, never float")
        value = Decimal(value)
        if dialect.name == "sqlite":
            scaled = value * _SCALE
            if scaled != scaled.to_integral_value():
                raise ValueError(f"{value} has more than {STORAGE_PLACES} decimal places")
            return int(scaled)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _SCALE).quantize(Decimal(1).scaleb(-STORAGE_PLACES))
        return Decimal(value).quantize(Decimal(1).scaleb(-STORAGE_PLACES))

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
