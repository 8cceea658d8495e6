"""Journal rules, pure: template evaluation, balancing per currency and in base currency.

A posting template says how a business document's lines become voucher lines. It
is evaluated here into :class:`Posting` drafts (signed amounts: debit positive,
credit negative), which :func:`balance` then checks and converts:

* every currency balances on its own (original amounts), exactly;
* converted to the company's base currency line by line (rounded half up), the
  voucher may be off by rounding; that difference becomes one explicit
  ``rounding`` line on the configured account, never a silent adjustment, and only
  if it is no larger than the rounding the conversions could have caused.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import DomainError, ValidationError
from .money import MINOR_UNITS

ZERO = Decimal(0)

AMOUNT_KINDS = ("net", "tax", "gross")
# Each kind as (net, tax) coefficients: a template balances when its debit and credit
# sides sum to the same vector, whatever the document's numbers turn out to be.
_KIND_VECTOR: dict[str, tuple[int, int]] = {"net": (1, 0), "tax": (0, 1), "gross": (1, 1)}
PLACEHOLDER = re.compile(r"\{(document|line)\.([a-z_]+)\}")


class Unbalanced(DomainError):
    """Debits and credits differ (per currency, or in base beyond rounding)."""

    code = "journal_unbalanced"
    http_status = 422


class TemplateError(DomainError):
    """A posting template is malformed: ``details`` name the file and the path inside."""

    code = "template_invalid"
    http_status = 422


@dataclass(frozen=True, slots=True)
class TemplateLine:
    """One rule of a template: which side, which account, which amount, per what."""

    side: str  # debit | credit
    account: str  # an account code, or "line.account" for the document line's account
    amount: str = "gross"  # net | tax | gross
    per: str = "line"  # line: one voucher line per document line; currency: summed per currency
    cost_centre: bool = False
    project: bool = False
    partner: str | None = None  # "document": the document's partner
    reservation: bool = False  # this line's amount moves the reservation into `actual`
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class PostingTemplate:
    name: str
    summary: str
    lines: tuple[TemplateLine, ...]
    description: str = ""
    voucher_word: str | None = None


@dataclass(frozen=True, slots=True)
class Posting:
    """A voucher line before it is stored. ``amount`` is signed: debit > 0, credit < 0."""

    account: str
    currency: str
    amount: Decimal
    cost_centre: str | None = None
    project: str | None = None
    partner: str | None = None
    memo: str | None = None
    source_ref: str | None = None
    reservation_id: int | None = None
    kind: str = "normal"
    rate: Decimal = Decimal(1)
    base_amount: Decimal | None = None  # set by :func:`balance`

    @property
    def side(self) -> str:
        return "debit" if self.amount >= 0 else "credit"


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """A business document line as the posting event carries it (validated upstream)."""

    ref: str
    account: str
    currency: str
    amount: Decimal  # net of tax
    tax_amount: Decimal = ZERO
    cost_centre: str | None = None
    project: str | None = None
    memo: str | None = None
    reservation_id: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def amount_of(self, kind: str) -> Decimal:
        return {"net": self.amount, "tax": self.tax_amount, "gross": self.amount + self.tax_amount}[kind]


def check_template_balances(template: PostingTemplate) -> None:
    """Refuse a template whose sides cannot balance for every document (static check)."""
    totals = {"debit": [0, 0], "credit": [0, 0]}
    for tl in template.lines:
        vec = _KIND_VECTOR[tl.amount]
        totals[tl.side][0] += vec[0]
        totals[tl.side][1] += vec[1]
    if totals["debit"] != totals["credit"]:
        def show(v: list[int]) -> str:
            return " + ".join(f"{n}×{k}" for n, k in zip(v, ("net", "tax"), strict=True) if n) or "0"

        raise TemplateError(
            f"template {template.name!r} does not balance: debits take {show(totals['debit'])}, "
            f"credits take {show(totals['credit'])}",
            path="lines",
        )


def render(text: str | None, document: Mapping[str, Any], line: DocumentLine | None) -> str | None:
    """Fill ``{document.x}`` / ``{line.x}`` placeholders; unknown values render empty."""
    if text is None:
        return None

    def sub(m: re.Match[str]) -> str:
        scope, name = m.group(1), m.group(2)
        if scope == "document":
            value = document.get(name)
        elif line is None:
            value = None
        else:
            value = getattr(line, name, None) if hasattr(line, name) else line.extra.get(name)
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(sub, text).strip()


def evaluate(
    template: PostingTemplate, document: Mapping[str, Any], lines: Sequence[DocumentLine]
) -> list[Posting]:
    """Turn a document into signed voucher-line drafts, in template order.

    Lines whose amount is zero (no tax on a line, say) are left out, which is how
    "Dr input VAT where the line carries tax" works.
    """
    if not lines:
        raise ValidationError("lines", "at least one line is required")
    out: list[Posting] = []
    partner = document.get("partner")
    for tl in template.lines:
        sign = Decimal(1) if tl.side == "debit" else Decimal(-1)
        if tl.per == "line":
            for ln in lines:
                value = ln.amount_of(tl.amount)
                if value == 0:
                    continue
                out.append(
                    Posting(
                        account=ln.account if tl.account == "line.account" else tl.account,
                        currency=ln.currency,
                        amount=sign * value,
                        cost_centre=ln.cost_centre if tl.cost_centre else None,
                        project=ln.project if tl.project else None,
                        partner=partner if tl.partner == "document" else None,
                        memo=render(tl.memo, document, ln) or ln.memo,
                        source_ref=ln.ref,
                        reservation_id=ln.reservation_id if tl.reservation else None,
                    )
                )
        else:
            per_currency: dict[str, Decimal] = defaultdict(Decimal)
            for ln in lines:
                per_currency[ln.currency] += ln.amount_of(tl.amount)
            for currency, value in per_currency.items():
                if value == 0:
                    continue
                out.append(
                    Posting(
                        account=tl.account,
                        currency=currency,
                        amount=sign * value,
                        partner=partner if tl.partner == "document" else None,
                        memo=render(tl.memo, document, None),
                    )
                )
    return out


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_UP)


def balance(
    postings: Iterable[Posting],
    base_currency: str,
    rates: Mapping[str, Decimal],
    rounding_account: str | None,
) -> list[Posting]:
    """Check per-currency balance, convert to base, and add the explicit rounding line.

    ``rates`` gives base units per unit of each foreign currency. Raises
    :class:`Unbalanced` naming the currency and the difference.
    """
    drafts = list(postings)
    if len(drafts) < 2:
        raise Unbalanced("a voucher needs at least one debit and one credit line", field="lines")
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for p in drafts:
        if p.kind != "rounding":
            per_currency[p.currency] += p.amount
    for currency, diff in sorted(per_currency.items()):
        if diff != 0:
            raise Unbalanced(
                f"{currency} debits and credits differ by {diff}",
                field="lines", currency=currency, difference=str(diff),
            )
    out: list[Posting] = []
    converted = 0
    for p in drafts:
        if p.currency == base_currency:
            rate = Decimal(1)
        else:
            if p.currency not in rates:
                raise ValidationError("currency", f"no exchange rate for {p.currency}")
            rate = rates[p.currency]
            converted += 1
        out.append(replace(p, rate=rate, base_amount=quantize(p.amount * rate, base_currency)))
    diff = sum((p.base_amount for p in out if p.base_amount is not None), ZERO)
    if diff != 0:
        # Each conversion can be off by at most half a minor unit.
        half_unit = Decimal(1).scaleb(-MINOR_UNITS[base_currency]) / 2
        if abs(diff) > half_unit * converted:
            raise Unbalanced(
                f"{base_currency} debits and credits differ by {diff}, more than rounding explains",
                field="lines", currency=base_currency, difference=str(diff),
            )
        if not rounding_account:
            raise Unbalanced(
                f"conversion leaves a rounding difference of {diff} {base_currency} and the "
                "company has no rounding account configured",
                field="rounding_account", difference=str(diff),
            )
        out.append(
            Posting(
                account=rounding_account, currency=base_currency, amount=-diff,
                memo="汇率折算尾差 rounding difference", kind="rounding",
                base_amount=-diff,
            )
        )
    return out


def check_balanced(lines: Iterable[tuple[str, str, Decimal, Decimal]]) -> list[str]:
    """Problems with stored lines ``(kind, currency, signed amount, signed base)``; [] if fine."""
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    base = ZERO
    for kind, currency, amount, base_amount in lines:
        if kind != "rounding":
            per_currency[currency] += amount
        base += base_amount
    problems = [f"{c} is off by {d}" for c, d in sorted(per_currency.items()) if d != 0]
    if base != 0:
        problems.append(f"base currency is off by {base}")
    return problems
