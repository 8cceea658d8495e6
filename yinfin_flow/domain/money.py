"""Money: a ``Decimal`` amount paired with an ISO 4217 currency code.

Nothing here ever touches ``float``. Amounts are validated on the way in (finite,
no more decimals than the currency allows) and rounding is always explicit via
:meth:`Money.round` with the currency's minor units and ``ROUND_HALF_UP``, the rule
Chinese accounting standards and most ERPs use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

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


#: How an amount is written at every door (API, OA forms, CLI, imports): ASCII digits,
#: at most one ``.`` followed by digits, and a leading ``-`` only where negatives make
#: sense. No spaces, no ``+``, no exponent, no thousands separators, no other digits.
AMOUNT_GRAMMAR = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
#: A currency is an ISO 4217 code in capitals; lower case is refused, never guessed.
CURRENCY_GRAMMAR = re.compile(r"[A-Z]{3}")
#: Integer digits accepted (amounts stay below :data:`MAX_AMOUNT`).
MAX_INTEGER_DIGITS = 14

AMOUNT_HELP = ('write amounts with ASCII digits and at most one ".", such as "1234.50": '
               "no spaces, exponents, thousands separators or other signs")


def check_currency(code: object, field: str = "currency") -> str:
    """Return ``code`` if it is an upper-case ISO 4217 code we know, else raise.

    ``"cny"`` and ``" CNY"`` are refused (with the spelling to use), never normalised:
    what is stored is exactly what was sent.
    """
    if not isinstance(code, str) or not code:
        raise ValidationError(field, "a currency code is required")
    if not CURRENCY_GRAMMAR.fullmatch(code):
        upper = code.strip().upper()
        if upper in MINOR_UNITS:
            raise ValidationError(field, f"{code!r}: write the ISO 4217 code in capitals, {upper!r}")
        raise ValidationError(field, f"{code[:20]!r} is not an ISO 4217 code (three capitals, such as CNY)")
    if code not in MINOR_UNITS:
        raise ValidationError(field, f"unknown currency {code!r}")
    return code


def minor_units(currency: str) -> int:
    return MINOR_UNITS[check_currency(currency)]


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def parse_decimal(value: object, field: str, *, places: int, signed: bool = False,
                  what: str = "amount", currency: str | None = None) -> Decimal:
    """Parse ``value`` written in :data:`AMOUNT_GRAMMAR` with at most ``places`` decimals.

    A string must follow the grammar exactly; zeros written past ``places`` are taken (they
    add no precision: the answer format can be sent back), any other digit there is
    refused. An ``int`` or ``Decimal`` from our own code is checked by value.
    Floats, NaN and infinities are refused; a minus sign only when ``signed``.
    """
    allowed = f" allowed for {currency}" if currency else ""
    if isinstance(value, (bool, float)):
        raise ValidationError(field, f"send {what}s as strings, not floating point numbers")
    if isinstance(value, Decimal):
        amount = value
        if not amount.is_finite():
            raise ValidationError(field, "NaN and infinity are not numbers")
        if amount != amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):
            raise ValidationError(field, f"{amount} has more than {places} decimal places{allowed}")
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        if not AMOUNT_GRAMMAR.fullmatch(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise ValidationError(field, f"{shown!r} is not {_article(what)}: {AMOUNT_HELP}")
        whole, _, decimals = value.lstrip("-").partition(".")
        # Zeros written past the minor units add no precision: "250.0000", the answer
        # format, is taken back as 250.00, so an amount read from any answer can be sent
        # again unchanged. A non-zero digit there ("250.001") is a decimal too many.
        if len(decimals.rstrip("0")) > places:
            raise ValidationError(field, f"{value} has more than {places} decimal places{allowed}")
        if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
            raise ValidationError(field, f"{value[:40]} is too large")
        amount = Decimal(value)
    else:
        raise ValidationError(field, f"{_article(what)} is required")
    if amount < 0 and not signed:
        raise ValidationError(field, "must not be negative")
    return amount


def parse_amount(
    value: object,
    currency: str,
    field: str = "amount",
    *,
    positive: bool = False,
    allow_zero: bool = True,
    signed: bool = True,
) -> Decimal:
    """Parse ``value`` (str in :data:`AMOUNT_GRAMMAR`, int or Decimal; never float) into
    an exact Decimal with at most ``currency``'s minor-unit decimals.

    ``positive`` refuses zero and negatives; ``signed=False`` refuses negatives;
    ``allow_zero=False`` refuses zero.
    """
    places = minor_units(currency)
    amount = parse_decimal(value, field, places=places, signed=signed or positive,
                           currency=currency)
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
        check_currency(self.currency)

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


def to_storage(amount: Decimal) -> Decimal:
    """Quantize to the stored scale; exact for any validated amount."""
    return amount.quantize(_STORAGE_QUANTUM)


def in_minor_units(amount: Decimal, currency: str) -> str:
    """``amount`` written with exactly ``currency``'s minor units (``"250.00"``): how a
    form keeps the amounts it was given, so that they parse again unchanged."""
    return format(amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency])), "f")


def show(amount: Decimal | int | str) -> str:
    """An amount as every answer writes it: fixed point with exactly
    :data:`STORAGE_PLACES` decimals (``"250.0000"``); never an exponent. The console
    formats for a locale from the same text, so a page and the API never disagree."""
    amount = Decimal(amount)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -STORAGE_PLACES:
        amount = amount.quantize(_STORAGE_QUANTUM)
    return format(amount, "f")
