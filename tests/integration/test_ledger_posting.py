"""Posting on both real databases: templates → balanced vouchers, budget actuals, reversals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from yinfin_flow.budget import setup
from yinfin_flow.budget.service import Budgets
from yinfin_flow.db.models import BudgetBalance, Reservation
from yinfin_flow.db.models.ledger import JournalEntry, JournalLine
from yinfin_flow.demo.ledger import setup_books
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.ledger import handlers, masterdata, periods
from yinfin_flow.ledger.periods import NoOpenPeriod, PeriodClosed
from yinfin_flow.ledger.posting import post
from yinfin_flow.ledger.reversal import reverse, reverse_document
from yinfin_flow.verify import verify

from ..factories import JAN, line_req, org_in

# The factories' items post to 6601 (TRAVEL) and 6602 (OFFICE): leaves in this chart.
CHART = [
    ("1002", "Bank", "asset", None),
    ("2202", "Accounts payable", "liability", None),
    ("2221", "Taxes payable", "liability", None),
    ("22210101", "Input VAT", "liability", "2221"),
    ("2241", "Other payables", "liability", None),
    ("6601", "Travel", "expense", None),
    ("6602", "Office", "expense", None),
    ("6603.02", "Rounding", "expense", None),
    ("1403", "Materials (USD only)", "asset", None),
]


@pytest.fixture(autouse=True)
def _wired():
    handlers.register()


def books(db, *, rates=True):
    org = org_in(db)
    with db.unit_of_work() as s:
        setup_books(s, "ACME", [2026], chart=CHART, employees=["amy", "bob"],
                    vendors=[("V001", "Cloudcalc")])
        masterdata.import_rows(s, "ACME", "accounts", [{"code": "1403", "currency": "USD"}])
        if rates:
            setup.add_rate(s, "USD", "CNY", date(2026, 1, 1), Decimal("7.1234"))
    return org


def expense(key="expense:1:approved", doc_id="1", lines=None, **kw):
    payload = dict(
        key=key, template="expense.approved", company="ACME", posting_date=JAN, actor="alice",
        document={"type": "expense", "id": doc_id, "title": "Beijing trip", "requester": "amy",
                  "partner": "EMP-amy"},
        lines=lines or [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP",
                         "amount": "100.00", "currency": "CNY", "memo": "train"}],
    )
    payload.update(kw)
    return payload


def entry_lines(db, entry_id):
    with db.unit_of_work(readonly=True) as s:
        return [
            (ln.line_no, ln.debit, ln.credit, ln.currency, ln.amount)
            for ln in s.scalars(select(JournalLine).where(JournalLine.entry_id == entry_id)
                                .order_by(JournalLine.line_no))
        ]


def count(db, model):
    with db.unit_of_work(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_expense_approved_posts_a_balanced_numbered_voucher(db):
    books(db)
    with db.unit_of_work() as s:
        r = post(s, **expense())
    assert r.voucher == "记-2026-01-0001"
    assert entry_lines(db, r.entry_id) == [
        (1, Decimal("100"), 0, "CNY", Decimal("100")),
        (2, 0, Decimal("100"), "CNY", Decimal("-100")),
    ]
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_posting_moves_reservation_to_actual_and_reversal_takes_it_back(db):
    org = books(db)
    with db.unit_of_work() as s:
        res = Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "250.00")],
                                 actor="amy")
    rid = res.reservations[0].id
    lines = [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP", "amount": "250.00",
              "currency": "CNY", "reservation_id": rid}]
    with db.unit_of_work() as s:
        r = post(s, **expense(lines=lines))
    with db.unit_of_work(readonly=True) as s:
        b = s.get(BudgetBalance, org.child_line)
        assert (b.pre_encumbered, b.actual) == (0, Decimal("250"))
        assert s.get(BudgetBalance, org.parent_line).actual == Decimal("250")
        assert verify(s) == []
    with db.unit_of_work() as s:
        rev = reverse(s, r.entry_id, key="expense:1:reversed", actor="cfo", reason="duplicate claim")
    assert rev.voucher == "记-2026-01-0002"
    assert entry_lines(db, rev.entry_id) == [
        (1, Decimal("-250"), 0, "CNY", Decimal("-250")),
        (2, 0, Decimal("-250"), "CNY", Decimal("250")),
    ]
    with db.unit_of_work(readonly=True) as s:
        assert s.get(BudgetBalance, org.child_line).actual == 0
        assert s.get(BudgetBalance, org.parent_line).actual == 0
        assert s.get(Reservation, rid).actual == 0
        assert verify(s) == []
    # A second reversal is refused; replaying the first returns it.
    with pytest.raises(Exception, match="already reversed"), db.unit_of_work() as s:
        reverse(s, r.entry_id, key="other-key", actor="cfo", reason="again")
    with db.unit_of_work() as s:
        assert reverse(s, r.entry_id, key="expense:1:reversed", actor="cfo", reason="x").replayed
        assert reverse_document(s, "expense", "1", key="doc-rev", actor="cfo", reason="x") == []


def test_same_key_never_makes_a_second_voucher(db):
    books(db)
    for _ in range(3):
        with db.unit_of_work() as s:
            r = post(s, **expense())
    assert r.replayed and r.voucher == "记-2026-01-0001"
    assert count(db, JournalEntry) == 1


def test_posting_requested_event_posts_in_the_publishers_transaction(db):
    from yinfin_flow import events

    books(db)
    with pytest.raises(RuntimeError), db.unit_of_work() as s:
        events.publish(s, "posting.requested", **expense())
        raise RuntimeError("the engine's action failed after publishing")
    assert count(db, JournalEntry) == 0
    with db.unit_of_work() as s:
        events.publish(s, "posting.requested", **expense())
    assert count(db, JournalEntry) == 1


def test_purchase_invoice_adds_input_vat_only_where_a_line_carries_tax(db):
    books(db)
    payload = expense(
        key="po:7:invoice", template="purchase.invoice_matched", doc_id="7",
        document={"type": "procurement", "id": "7", "title": "laptops", "partner": "V001"},
        lines=[
            {"ref": "1", "account": "6602", "cost_centre": "RD", "amount": "1000.00",
             "tax_amount": "130.00", "currency": "CNY"},
            {"ref": "2", "account": "6602", "cost_centre": "RD", "amount": "50.00", "currency": "CNY"},
        ],
    )
    with db.unit_of_work() as s:
        r = post(s, **payload)
    assert entry_lines(db, r.entry_id) == [
        (1, Decimal("1000"), 0, "CNY", Decimal("1000")),
        (2, Decimal("50"), 0, "CNY", Decimal("50")),
        (3, Decimal("130"), 0, "CNY", Decimal("130")),
        (4, 0, Decimal("1180"), "CNY", Decimal("-1180")),
    ]


def test_foreign_currency_is_converted_with_an_explicit_rounding_line(db):
    books(db)
    three = [{"ref": str(i), "account": "6601", "cost_centre": "RD", "amount": a, "currency": "USD"}
             for i, a in enumerate(("33.33", "33.33", "33.34"), start=1)]
    with db.unit_of_work() as s:
        r = post(s, **expense(lines=three))
    got = entry_lines(db, r.entry_id)
    # 33.33 × 7.1234 → 237.42 (twice), 33.34 × 7.1234 → 237.49; 100 × 7.1234 → 712.34:
    # 0.01 short on the debit side, made up by one explicit rounding line.
    assert [g[1] - g[2] for g in got] == [
        Decimal("237.42"), Decimal("237.42"), Decimal("237.49"), Decimal("-712.34"), Decimal("0.01"),
    ]
    with db.unit_of_work(readonly=True) as s:
        kinds = [ln.kind for ln in s.scalars(select(JournalLine).where(JournalLine.entry_id == r.entry_id))]
        assert kinds.count("rounding") == 1
        assert verify(s) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account": "9999"}, "lines[0].account"),
        ({"account": "2221"}, "lines[0].account"),  # has sub-accounts
        ({"account": "1403"}, "lines[0].account"),  # kept in USD only
        ({"cost_centre": "NOPE"}, "lines[0].cost_centre"),
        ({"currency": "USD", "amount": "10.00"}, "lines[0].currency"),  # no rate loaded
        ({"amount": "-5"}, "lines[0].amount"),
        ({"amount": 1.5}, "lines[0].amount"),
        ({"item": "NOPE"}, "lines[0].item"),
        ({"reservation_id": "abc"}, "lines[0].reservation_id"),
        ({"reservation_id": 999}, "lines[0].reservation_id"),
    ],
)
def test_bad_input_names_the_field_and_posts_nothing(db, change, field):
    books(db, rates=False)
    line = {"ref": "1", "item": "TRAVEL", "cost_centre": "RD", "amount": "10.00", "currency": "CNY"}
    line.update(change)
    with pytest.raises(DomainError) as err, db.unit_of_work() as s:
        post(s, **expense(lines=[line]))
    assert err.value.details["field"] == field
    assert count(db, JournalEntry) == 0


def test_inactive_cost_centre_and_unknown_partner_are_refused(db):
    books(db)
    with db.unit_of_work() as s:
        masterdata.deactivate(s, "ACME", "cost_centres", "RD-APP")
    with pytest.raises(ValidationError, match="inactive") as err, db.unit_of_work() as s:
        post(s, **expense())
    assert err.value.details["field"] == "lines[0].cost_centre"
    doc = {"type": "expense", "id": "1", "title": "t", "requester": "amy", "partner": "EMP-zed"}
    line = [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD", "amount": "1", "currency": "CNY"}]
    with pytest.raises(ValidationError) as err, db.unit_of_work() as s:
        post(s, **expense(document=doc, lines=line))
    assert err.value.details["field"] == "document.partner"
    assert count(db, JournalEntry) == 0


def test_closed_period_is_refused_or_rolls_to_the_next_open_one(db):
    books(db)
    with db.unit_of_work() as s:
        periods.close_period(s, "ACME", "2026-01", actor="cfo")
    with pytest.raises(PeriodClosed) as err, db.unit_of_work() as s:
        post(s, **expense())
    assert err.value.details["field"] == "posting_date"
    with db.unit_of_work() as s:
        masterdata.configure(s, "ACME", closed_period_policy="next_open")
    with db.unit_of_work() as s:
        r = post(s, **expense())
    assert (r.period, r.posting_date, r.voucher) == ("2026-02", date(2026, 2, 1), "记-2026-02-0001")
    with pytest.raises(NoOpenPeriod), db.unit_of_work() as s:
        post(s, **expense(key="k2", posting_date=date(2027, 3, 1)))


def test_closing_refuses_while_vouchers_wait_for_the_erp(db):
    from yinfin_flow.ledger.sync import mark

    books(db)
    with db.unit_of_work() as s:
        r = post(s, **expense())
        mark(s, r.entry_id, "pending")
    with pytest.raises(Exception, match="记-2026-01-0001") as err, db.unit_of_work() as s:
        periods.close_period(s, "ACME", "2026-01", actor="cfo")
    assert err.value.details["unsynced"][0]["entry_id"] == r.entry_id
    with db.unit_of_work() as s:
        mark(s, r.entry_id, "synced", erp_voucher_id="K3-0001")
    with db.unit_of_work() as s:
        assert periods.close_period(s, "ACME", "2026-01", actor="cfo").status == "closed"


def test_voucher_numbers_have_no_gaps_when_a_posting_fails(db):
    books(db)
    with db.unit_of_work() as s:
        post(s, **expense(key="a"))
    with pytest.raises(ValidationError), db.unit_of_work() as s:
        post(s, **expense(key="b", lines=[{"ref": "1", "account": "9999", "amount": "1", "currency": "CNY"}]))
    with db.unit_of_work() as s:
        r = post(s, **expense(key="c"))
    assert r.voucher == "记-2026-01-0002"


def test_vouchers_are_append_only_and_tampering_shows_in_verify(db):
    books(db)
    with db.unit_of_work() as s:
        post(s, **expense())
    for sql in ("UPDATE journal_lines SET debit = 0", "DELETE FROM journal_entries"):
        with pytest.raises(Exception, match="append-only"), db.unit_of_work() as s:
            s.execute(text(sql))
    # Someone with DDL rights drops the trigger and edits a line: verify notices.
    with db.unit_of_work() as s:
        if db.dialect == "postgresql":
            s.execute(text("ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_append_only"))
        else:
            s.execute(text("DROP TRIGGER journal_lines_no_update"))
        s.execute(text("UPDATE journal_lines SET memo = 'edited' WHERE line_no = 1"))
        s.execute(text("UPDATE journal_lines SET credit = credit + 1 WHERE line_no = 2"))
        if db.dialect == "postgresql":
            s.execute(text("ALTER TABLE journal_lines ENABLE TRIGGER journal_lines_append_only"))
    with db.unit_of_work(readonly=True) as s:
        checks = {p.check for p in verify(s)}
    assert {"journal_balances", "journal_unchanged"} <= checks


def test_concurrent_postings_get_gap_free_unique_voucher_numbers(db):
    from concurrent.futures import ThreadPoolExecutor

    books(db)

    def one(i):
        with db.unit_of_work() as s:
            return post(s, **expense(key=f"k{i}", doc_id=str(i))).voucher

    with ThreadPoolExecutor(max_workers=6) as pool:
        vouchers = list(pool.map(one, range(18)))
    assert sorted(vouchers) == [f"记-2026-01-{n:04d}" for n in range(1, 19)]
    with db.unit_of_work(readonly=True) as s:
        assert verify(s) == []


def test_reverse_actual_never_takes_actual_below_zero_and_replays(db):
    from yinfin_flow.domain.budget import InsufficientHold

    org = books(db)
    with db.unit_of_work() as s:
        b = Budgets(s)
        rid = b.reserve("r", ("expense", "1"), [line_req(org.child_line, "80")], actor="amy").reservations[0].id
        b.advance("r:actual", rid, "actual", actor="ap")
    with pytest.raises(InsufficientHold), db.unit_of_work() as s:
        Budgets(s).reverse_actual("too-much", rid, "80.01", actor="cfo")
    for _ in range(2):
        with db.unit_of_work() as s:
            Budgets(s).reverse_actual("rev", rid, "30", actor="cfo")
    with db.unit_of_work(readonly=True) as s:
        assert s.get(Reservation, rid).actual == Decimal("50")
        assert s.get(BudgetBalance, org.parent_line).actual == Decimal("50")
        assert [p for p in verify(s) if p.check != "actuals_match_postings"] == []


def test_concurrent_retries_of_one_key_make_one_voucher(db):
    from concurrent.futures import ThreadPoolExecutor

    org = books(db)
    with db.unit_of_work() as s:
        rid = Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "100.00")],
                                 actor="amy").reservations[0].id
    lines = [{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP", "amount": "100.00",
              "currency": "CNY", "reservation_id": rid}]

    def one(_):
        with db.unit_of_work() as s:
            return post(s, **expense(lines=lines)).voucher

    with ThreadPoolExecutor(max_workers=4) as pool:
        vouchers = list(pool.map(one, range(8)))
    assert set(vouchers) == {"记-2026-01-0001"}
    assert count(db, JournalEntry) == 1
    with db.unit_of_work(readonly=True) as s:
        assert s.get(BudgetBalance, org.child_line).actual == Decimal("100")
        assert verify(s) == []


def test_reversal_requested_event_reverses_the_documents_vouchers_and_actual(db):
    from yinfin_flow import events

    org = books(db)
    with db.unit_of_work() as s:
        rid = Budgets(s).reserve("exp-1", ("expense", "1"), [line_req(org.child_line, "40.00")],
                                 actor="amy").reservations[0].id
        post(s, **expense(lines=[{"ref": "1", "item": "TRAVEL", "cost_centre": "RD-APP",
                                  "amount": "40.00", "currency": "CNY", "reservation_id": rid}]))
        post(s, **expense(key="expense:1:paid", template="expense.paid"))
    for _ in range(2):  # replayed: still one reversal per voucher
        with db.unit_of_work() as s:
            events.publish(s, "reversal.requested", key="expense:1:reversed", actor="cfo",
                           reason="claim withdrawn after payment", document={"type": "expense", "id": "1"})
    with db.unit_of_work(readonly=True) as s:
        assert s.scalar(select(func.count()).where(JournalEntry.reverses_id.isnot(None))) == 2
        assert s.get(BudgetBalance, org.child_line).actual == 0
        assert verify(s) == []
