"""Marshmallow fields the whole API shares: money as strings, safe text, bounded ids.

These fields are where "no input may cause a 500" is enforced for shapes the
database would otherwise choke on: NUL characters (PostgreSQL refuses them in
text), strings longer than their column, integers beyond the id columns, and
money sent as a JSON number (binary floating point is never money here).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields, validate

from yinfin_flow.domain.money import show

#: Largest id accepted: ids are 32-bit integers on PostgreSQL (``integer``).
MAX_ID = 2**31 - 1

#: Amount text as finance writes it (:data:`yinfin_flow.domain.money.AMOUNT_GRAMMAR`,
#: bounded): optional sign, ASCII digits, optional decimals. The currency's minor units
#: are checked by the service, which knows the currency.
AMOUNT_PATTERN = r"^-?[0-9]{1,14}(\.[0-9]{1,4})?$"
_AMOUNT_RE = re.compile(r"-?[0-9]{1,14}(?:\.[0-9]{1,4})?")
#: Amounts in answers: fixed point, exactly four decimals (``"250.0000"``).
OUTPUT_PATTERN = r"^-?[0-9]+\.[0-9]{4,}$"


class Text(fields.String):
    """A string with a length limit that refuses NUL and other control characters.

    ``max_length`` should match the column it ends up in, so an over-long value is a
    422 naming the field rather than a database error.
    """

    def __init__(self, *, max_length: int = 200, min_length: int = 0, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", []) or [])
        validators.append(validate.Length(min=min_length, max=max_length))
        validators.append(
            validate.Regexp(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
                            error="must not contain control characters")
        )
        super().__init__(validate=validators, **kwargs)


class Code(Text):
    """A master-data or line code (company, cost centre, item, project, period)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("min_length", 1)
        super().__init__(**kwargs)


class Id(fields.Integer):
    """A database id: a positive 32-bit integer (strict: ``"5"`` is not an id)."""

    def __init__(self, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", []) or [])
        validators.append(validate.Range(min=1, max=MAX_ID))
        kwargs.setdefault("strict", True)
        super().__init__(validate=validators, **kwargs)


class QueryId(fields.Integer):
    """An id in a query string (where everything arrives as text)."""

    def __init__(self, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", []) or [])
        validators.append(validate.Range(min=1, max=MAX_ID))
        super().__init__(validate=validators, **kwargs)


class AmountString(fields.Field):
    """Money in JSON: a string like ``"1234.50"``, never a JSON number.

    Loads to a :class:`~decimal.Decimal`; whether the decimals suit the currency is
    checked by the service, which knows the line's currency. Dumps any Decimal as a
    string exactly as stored.
    """

    default_error_messages = {
        "number": 'send amounts as strings such as "123.45", not JSON numbers',
        "invalid": 'must be a decimal number written as a string, such as "123.45"',
    }

    def __init__(self, *, output: bool = False, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {}) or {}
        metadata.setdefault("type", "string")
        # Inputs are bounded (14 digits, 4 decimals); totals we report may be longer.
        metadata.setdefault("pattern", OUTPUT_PATTERN if output else AMOUNT_PATTERN)
        metadata.setdefault("example", "1234.50")
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.make_error("number")
        if not isinstance(value, str) or not _AMOUNT_RE.fullmatch(value):
            raise self.make_error("invalid")
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern already rules it out
            raise self.make_error("invalid") from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        # One format for every amount answered: fixed point, four decimals, never "1E+2".
        return show(Decimal(value))


class Currency(fields.String):
    """An ISO 4217 code; the service checks it is one finance uses."""

    def __init__(self, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", []) or [])
        # Length too: "$" would let "CNY\n" through.
        validators.append(validate.Length(equal=3, error="must be an ISO 4217 code in capitals, such as CNY"))
        validators.append(validate.Regexp(r"^[A-Z]{3}$",
                                          error="must be an ISO 4217 code in capitals, such as CNY"))
        metadata = kwargs.pop("metadata", {}) or {}
        metadata.setdefault("example", "CNY")
        super().__init__(validate=validators, metadata=metadata, **kwargs)


def one_of(values: Any) -> validate.OneOf:
    """``OneOf`` over an enum's values (or any iterable of strings)."""
    return validate.OneOf([getattr(v, "value", v) for v in values])


__all__ = [
    "AMOUNT_PATTERN",
    "OUTPUT_PATTERN",
    "MAX_ID",
    "AmountString",
    "Code",
    "Currency",
    "Id",
    "Money",
    "QueryId",
    "Text",
    "ValidationError",
    "one_of",
]


def Money(**kwargs: Any) -> AmountString:  # noqa: N802 - reads like a field class
    """An amount in a response (documented with the unbounded output pattern)."""
    return AmountString(output=True, **kwargs)
