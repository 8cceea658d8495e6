"""Money: a ``Decimal`` amount paired with an ISO 4217 currency code.

Nothing here ever touches ``float``. Amounts are validated on the way in (finite,
no more decimals than the currency allows) and rounding is always explicit via
:meth:`Money.round` with the currency's minor units and ``ROUND_HALF_UP``, the rule
Chinese accounting standards and most ERPs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import ValidationError

# Minor units per ISO 4217 for the currencies finance teams here meet. A currency
# not in this table is refused rather than guessed at.
MINOR_UNITS: dict[str, int] = {
    "CNY": 2, "USD": 2, "EUR": 2, "HKD": 2, "GBP": 2, "JPY": 0, "KRW": 0, "SGD": 2,
    "AUD": 2, "CAD": 2, "CHF": 2, "TWD": 2, "MOP": 2, "THB": 2, "MYR": 2, "VND": 0,
    "IDR": 2, "INR": 2, "RUB": 2, "AED": 2, "SAR": 2, "NZD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "BRL": 2, "MXN": 2, "ZAR": 2, "PHP": 2, "KWD": 3, "BHD": 3,
}

#: Largest amount accepted anywhere (keeps SQLite's scaled-integer storage exact).
MAX_AMOUNT = Decimal(10) ** 14

#: Precision kept in storage: ``Numeric(20, 4)``.
STORAGE_PLACES = 4
_STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)


def check_currency(code: object, field: str = "currency") -> str:
    """Return ``code`` upper-cased if it is a known ISO 4217 code, else raise."""
    if not isinstance(code, str) or not code.strip():
        raise ValidationError(field, "a currency code is required")
    norm = code.strip().upper()
    if norm not in MINOR_UNITS:
        raise ValidationError(field, f"unknown currency {code!r}")
    return norm


def minor_units(currency: str) -> int:
    return MINOR_UNITS[check_currency(currency)]


def parse_amount(
    value: object,
    currency: str,
    field: str = "amount",
    *,
    positive: bool = False,
    allow_zero: bool = True,
) -> Decimal:
    """Parse ``value`` (str, int or Decimal; never float) into an exact Decimal.

    Refuses floats, NaN and infinities, more decimals than ``currency`` allows, and,
    if asked, amounts that are not positive.
    """
    if isinstance(value, (bool, float)):
        raise ValidationError(field, "send amounts as strings or integers, not floating point")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(field, f"{value!r} is not a number") from None
    else:
        raise ValidationError(field, "an amount is required")
    if not amount.is_finite():
        raise ValidationError(field, "NaN and infinity are not amounts")
    places = minor_units(currency)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(
            field, f"{amount} has more than {places} decimal places allowed for {currency}"
        )
    if abs(amount) >= MAX_AMOUNT:
        raise ValidationError(field, f"{amount} is too large")
    if positive and amount <= 0:
        raise ValidationError(field, "must be greater than zero")
    if not allow_zero and amount == 0:
        raise ValidationError(field, "must not be zero")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic across currencies raises."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")
        if not self.amount.is_finite():
            raise ValueError("Money.amount must be finite")
        # Normalise (" cny" -> "CNY"): the minor-units table and comparisons key on it.
        object.__setattr__(self, "currency", check_currency(self.currency))

    @classmethod
    def of(cls, value: object, currency: str) -> Money:
        cur = check_currency(currency)
        return cls(parse_amount(value, cur), cur)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), check_currency(currency))

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def round(self) -> Money:
        """Round to the currency's minor units, half up (explicit, never implicit)."""
        q = Decimal(1).scaleb(-MINOR_UNITS[self.currency])
        return Money(self.amount.quantize(q, rounding=ROUND_HALF_UP), self.currency)

    def convert(self, rate: Decimal, to_currency: str) -> Money:
        """Convert at ``rate`` (units of ``to_currency`` per unit of ours), rounded."""
        return Money(self.amount * rate, check_currency(to_currency)).round()

    def __str__(self) -> str:
        places = MINOR_UNITS[self.currency]
        return f"{self.amount.quantize(Decimal(1).scaleb(-places)):,} {self.currency}"


def plain(amount: Decimal | int | str) -> str:
    """An amount as the API writes it: fixed-point text, exactly as stored (never
    ``1E+2``, which is not what finance reads). The console formats for a locale from
    the same text, so a page and the API never disagree on a figure."""
    return format(Decimal(amount), "f")


def to_storage(amount: Decimal) -> Decimal:
    """Quantize to the stored scale; exact for any validated amount."""
    return amount.quantize(_STORAGE_QUANTUM)
