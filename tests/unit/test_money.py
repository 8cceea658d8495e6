"""Money: exact Decimal amounts with a currency; every bad input is refused by name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.money import (
    MAX_AMOUNT,
    Money,
    check_currency,
    minor_units,
    parse_amount,
    show,
    to_storage,
)


def refused(value: object, currency: str = "CNY", **kw: object) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        parse_amount(value, currency, "lines[0].amount", **kw)  # type: ignore[arg-type]
    assert err.value.details["field"] == "lines[0].amount"
    return err.value


# -- parse_amount -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.5, 0.1, float("nan"), float("inf"), True])
def test_floats_and_bools_are_refused(value: object) -> None:
    assert "floating point" in refused(value).details["problem"]


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_nan_and_infinity_are_refused(value: object) -> None:
    assert "NaN and infinity" in refused(value).details["problem"]


@pytest.mark.parametrize("value", ["abc", "", "1,000.00", "1e", None, [1], {"a": 1},
                                   "NaN", "nan", "sNaN", "Infinity", "-Infinity"])
def test_non_numbers_are_refused(value: object) -> None:
    refused(value)


@pytest.mark.parametrize("value", [
    " 5.00", "5.00 ", "\t5", "5.00\n", "1e2", "1E+2", "1.5e1", "+5", "--5", "5.", ".5", "5..0",
    "1,000", "1 000", "1_000", "١٢٣", "１２３", "१२३", "5.0٠", "0x10", "5-",
])
def test_one_grammar_refuses_every_other_way_of_writing_a_number(value: str) -> None:
    """ASCII digits, one ".", a leading "-": nothing else (spaces, exponents, grouping,
    other scripts' digits were all accepted once, and "1e2" was stored as "1E+2")."""
    assert "is not an amount" in refused(value).details["problem"]


def test_a_minus_sign_only_where_negatives_make_sense() -> None:
    assert parse_amount("-5.00", "CNY") == Decimal("-5.00")
    assert "negative" in refused("-5.00", signed=False).details["problem"]
    assert "greater than zero" in refused("-5.00", positive=True).details["problem"]


@pytest.mark.parametrize(("value", "currency", "expected"),
                         [("1.500", "CNY", "1.5"), ("100.00", "JPY", "100"), ("1.2340", "KWD", "1.234"),
                          ("250.0000", "CNY", "250")])
def test_zeros_past_the_minor_units_are_taken_so_answers_can_be_sent_back(
        value: str, currency: str, expected: str) -> None:
    assert parse_amount(value, currency) == Decimal(expected)
    assert parse_amount(show(parse_amount(value, currency)), currency) == Decimal(expected)


def test_amounts_from_our_own_code_are_checked_by_value() -> None:
    assert parse_amount(Decimal("250.0000"), "CNY") == Decimal("250")  # as stored
    assert "decimal places" in refused(Decimal("250.0001")).details["problem"]


@pytest.mark.parametrize(
    ("value", "currency"),
    [("1.001", "CNY"), ("0.005", "USD"), ("1.5", "JPY"), ("100.1", "KRW"), ("1.0001", "KWD")],
)
def test_more_decimals_than_the_currency_allows_are_refused(value: str, currency: str) -> None:
    assert "decimal places" in refused(value, currency).details["problem"]


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("12.34", "CNY", Decimal("12.34")),
        ("12.3", "CNY", Decimal("12.3")),
        ("0012.30", "CNY", Decimal("12.3")),
        ("100", "JPY", Decimal("100")),
        ("1.234", "KWD", Decimal("1.234")),
        (7, "USD", Decimal(7)),
        (Decimal("0.01"), "USD", Decimal("0.01")),
    ],
)
def test_valid_amounts_parse_exactly(value: object, currency: str, expected: Decimal) -> None:
    got = parse_amount(value, currency)
    assert isinstance(got, Decimal)
    assert got == expected


def test_unknown_currency_is_refused_naming_the_currency_field() -> None:
    with pytest.raises(ValidationError) as err:
        check_currency("XYZ", "lines[0].currency")
    assert err.value.details["field"] == "lines[0].currency"
    with pytest.raises(ValidationError):
        parse_amount("1", "XYZ")
    with pytest.raises(ValidationError):
        check_currency(None)
    with pytest.raises(ValidationError):
        check_currency("  ")


@pytest.mark.parametrize("code", ["cny", "Cny", " CNY", "CNY ", "CNY\n", "ＣＮＹ", "CN", "CNYY"])
def test_currency_codes_are_capitals_exactly_and_never_normalised(code: str) -> None:
    """``"cny"`` was accepted and kept in lower case; now it is refused with the
    spelling to use, as is anything but three capitals."""
    with pytest.raises(ValidationError) as err:
        check_currency(code, "lines[0].currency")
    assert err.value.details["field"] == "lines[0].currency"
    if code.strip().upper() == "CNY":
        assert "'CNY'" in err.value.details["problem"]
    assert check_currency("CNY") == "CNY"
    assert minor_units("KWD") == 3


def test_zero_and_negative_refused_only_when_asked() -> None:
    assert parse_amount("0", "CNY") == 0
    assert parse_amount("-5", "CNY") == Decimal(-5)
    assert "greater than zero" in refused("0", positive=True).details["problem"]
    assert "greater than zero" in refused("-0.01", positive=True).details["problem"]
    assert "not be zero" in refused("0.00", allow_zero=False).details["problem"]
    assert parse_amount("-3", "CNY", allow_zero=False) == Decimal(-3)


def test_too_large_is_refused() -> None:
    refused(str(MAX_AMOUNT))
    refused(str(-MAX_AMOUNT))
    assert parse_amount(str(MAX_AMOUNT - 1), "CNY") == MAX_AMOUNT - 1


# -- Money ----------------------------------------------------------------------------


def test_arithmetic_across_currencies_raises() -> None:
    cny, usd = Money(Decimal("1"), "CNY"), Money(Decimal("1"), "USD")
    for op in (lambda: cny + usd, lambda: cny - usd, lambda: cny < usd, lambda: cny <= usd):
        with pytest.raises(ValueError, match="cannot combine CNY with USD"):
            op()


def test_arithmetic_within_a_currency_is_exact() -> None:
    a = Money(Decimal("0.10"), "CNY")
    total = Money.zero("CNY")
    for _ in range(10):
        total = total + a
    assert total == Money(Decimal("1.00"), "CNY")
    assert (total - a).amount == Decimal("0.90")
    assert (-a).amount == Decimal("-0.10")
    assert a < total and a <= a


def test_money_refuses_floats_and_non_finite() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(Decimal("NaN"), "CNY")
    with pytest.raises(ValidationError):
        Money(Decimal(1), "XXX")
    with pytest.raises(ValidationError):
        Money.of(0.5, "CNY")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", "CNY", "2.35"),  # half up, not banker's (which gives 2.34)
        ("2.335", "CNY", "2.34"),
        ("-2.345", "CNY", "-2.35"),  # half away from zero
        ("2.344999", "CNY", "2.34"),
        ("0.5", "JPY", "1"),
        ("1.5", "JPY", "2"),
        ("2.5", "JPY", "3"),  # banker's would give 2
        ("1.0005", "KWD", "1.001"),
    ],
)
def test_round_is_half_up_to_minor_units(amount: str, currency: str, expected: str) -> None:
    got = Money(Decimal(amount), currency).round()
    assert got.amount == Decimal(expected)
    assert got.amount.as_tuple().exponent == -minor_units(currency)


def test_convert_rounds_half_up_into_the_target_currency() -> None:
    # 100.05 USD at 7.1235 = 712.706175 CNY -> 712.71
    assert Money(Decimal("100.05"), "USD").convert(Decimal("7.1235"), "CNY") == Money(Decimal("712.71"), "CNY")
    # 10.00 CNY at 20.65 JPY/CNY = 206.5 JPY -> 207 (0 decimals, half up)
    assert Money(Decimal("10.00"), "CNY").convert(Decimal("20.65"), "JPY") == Money(Decimal("207"), "JPY")
    with pytest.raises(ValidationError):
        Money(Decimal(1), "CNY").convert(Decimal(1), "ZZZ")


def test_str_shows_the_currency_minor_units() -> None:
    assert str(Money(Decimal("1234.5"), "CNY")) == "1,234.50 CNY"
    assert str(Money(Decimal("1234"), "JPY")) == "1,234 JPY"


def test_to_storage_keeps_four_places() -> None:
    assert to_storage(Decimal("1.5")) == Decimal("1.5000")
    assert to_storage(Decimal("1.5")).as_tuple().exponent == -4


@given(
    cents=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["CNY", "USD", "JPY", "KWD"]),
)
def test_any_amount_within_minor_units_round_trips(cents: int, currency: str) -> None:
    places = minor_units(currency)
    value = Decimal(cents).scaleb(-places)
    if abs(value) >= MAX_AMOUNT:
        with pytest.raises(ValidationError):
            parse_amount(str(value), currency)
        return
    assert parse_amount(str(value), currency) == value
    assert Money(value, currency).round().amount == value


@given(
    a=st.decimals(min_value=-10**6, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),
)
def test_round_never_moves_more_than_half_a_minor_unit(a: Decimal) -> None:
    rounded = Money(a, "CNY").round().amount
    assert abs(rounded - a) <= Decimal("0.005")
    # half up: an exact half always moves away from zero
    if abs(a * 100 - (a * 100).to_integral_value(rounding="ROUND_DOWN")) == Decimal("0.5"):
        assert abs(rounded) > abs(a)


def test_money_refuses_a_lower_case_currency_code() -> None:
    with pytest.raises(ValidationError):
        Money(Decimal("1.005"), "cny")
    m = Money(Decimal("1.005"), "CNY")
    assert m.round().amount == Decimal("1.01")
    assert str(Money(Decimal(5), "JPY")) == "5 JPY"


@pytest.mark.parametrize(("amount", "shown"), [
    (Decimal("250"), "250.0000"), (Decimal("250.00"), "250.0000"), (Decimal("250.0000"), "250.0000"),
    (Decimal("1E+2"), "100.0000"), (Decimal("-0.5"), "-0.5000"), (Decimal("0.123456"), "0.123456"),
])
def test_answers_show_every_amount_with_four_decimals(amount: Decimal, shown: str) -> None:
    assert show(amount) == shown
