"""Journal rules without a database: template evaluation and balancing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yinfin_flow.domain.journal import (
    DocumentLine,
    Posting,
    PostingTemplate,
    TemplateError,
    TemplateLine,
    Unbalanced,
    balance,
    check_balanced,
    check_template_balances,
    evaluate,
    render,
)

D = Decimal
PURCHASE = PostingTemplate(
    name="purchase.invoice_matched", summary="采购 {document.title}",
    lines=(
        TemplateLine("debit", "line.account", "net", "line", cost_centre=True, reservation=True),
        TemplateLine("debit", "22210101", "tax", "line"),
        TemplateLine("credit", "2202", "gross", "currency", partner="document"),
    ),
)
DOC = {"type": "procurement", "id": "7", "title": "laptops", "partner": "V001"}


def line(ref="1", amount="100", tax="0", currency="CNY", account="6602", **kw):
    return DocumentLine(ref=ref, account=account, currency=currency, amount=D(amount),
                        tax_amount=D(tax), **kw)


def test_vat_line_only_where_the_line_carries_tax():
    out = evaluate(PURCHASE, DOC, [line("1", "1000", "130", cost_centre="RD", reservation_id=9),
                                   line("2", "50")])
    assert [(p.account, p.amount, p.source_ref) for p in out] == [
        ("6602", D(1000), "1"), ("6602", D(50), "2"), ("22210101", D(130), "1"), ("2202", D(-1180), None),
    ]
    assert out[0].cost_centre == "RD" and out[0].reservation_id == 9
    assert out[2].reservation_id is None and out[3].partner == "V001"


def test_per_currency_lines_are_summed_per_currency():
    out = evaluate(PURCHASE, DOC, [line("1", "10", currency="USD"), line("2", "20"), line("3", "5", currency="USD")])
    credits = [(p.currency, p.amount) for p in out if p.amount < 0]
    assert credits == [("USD", D(-15)), ("CNY", D(-20))]


def test_template_that_cannot_balance_is_refused():
    bad = PostingTemplate("x.y", "s", (TemplateLine("debit", "line.account", "net"),
                                       TemplateLine("credit", "2202", "gross", "currency")))
    with pytest.raises(TemplateError, match="does not balance"):
        check_template_balances(bad)
    check_template_balances(PURCHASE)  # net + tax == gross


def test_render_fills_known_placeholders_only():
    assert render("报销 {document.title} {line.memo}", {"title": "trip"}, line(memo="taxi")) == "报销 trip taxi"
    assert render("{document.missing}x", {}, None) == "x"


def test_balance_converts_and_adds_one_explicit_rounding_line():
    drafts = [Posting("6601", "USD", D(a)) for a in ("33.33", "33.33", "33.34")]
    drafts.append(Posting("2241", "USD", D("-100")))
    out = balance(drafts, "CNY", {"USD": D("7.1234")}, "6603.02")
    assert [p.base_amount for p in out] == [D("237.42"), D("237.42"), D("237.49"), D("-712.34"), D("0.01")]
    assert out[-1].kind == "rounding" and out[-1].account == "6603.02"


def test_balance_refuses_rounding_without_an_account_and_unbalanced_currencies():
    drafts = [Posting("6601", "USD", D(a)) for a in ("33.33", "33.33", "33.34")] + [Posting("2241", "USD", D(-100))]
    with pytest.raises(Unbalanced) as err:
        balance(drafts, "CNY", {"USD": D("7.1234")}, None)
    assert err.value.details["field"] == "rounding_account"
    with pytest.raises(Unbalanced) as err:
        balance([Posting("6601", "CNY", D(10)), Posting("2241", "CNY", D(-9))], "CNY", {}, "x")
    assert err.value.details["currency"] == "CNY"
    with pytest.raises(Unbalanced):
        balance([Posting("6601", "CNY", D(10))], "CNY", {}, "x")


@given(st.lists(st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2), min_size=1, max_size=12),
       st.decimals(min_value=D("0.0001"), max_value=D("200"), places=4))
def test_any_balanced_foreign_voucher_balances_in_base_after_conversion(amounts, rate):
    drafts = [Posting("6601", "USD", a) for a in amounts] + [Posting("2241", "USD", -sum(amounts))]
    out = balance(drafts, "CNY", {"USD": rate}, "6603.02")
    assert sum(p.base_amount for p in out) == 0
    assert check_balanced((p.kind, p.currency, p.amount, p.base_amount) for p in out) == []
    assert sum(1 for p in out if p.kind == "rounding") <= 1


def test_check_balanced_reports_each_problem():
    assert check_balanced([("normal", "CNY", D(1), D(1)), ("normal", "CNY", D(-2), D(-2))]) == [
        "CNY is off by -1", "base currency is off by -1"]
