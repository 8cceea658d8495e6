"""What the books-side finance pages share: whose books (the company), a month or year
asked for in the address, and the menu entries.

Not a page module itself (it is not in :data:`~yinfin_flow.web.finance.MODULES`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import request

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.engine import directory
from yinfin_flow.ledger.vouchers import company_codes
from yinfin_flow.security.policy import ADMIN, FINANCE

from ..common import me

PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
FINANCE_ROLES = frozenset({FINANCE})
BOOKS_ROLES = frozenset({FINANCE, ADMIN})
ADMIN_ROLES = frozenset({ADMIN})


def company(session: Any) -> tuple[str, list[str]]:
    """The company asked for (``?company=``), else the signed-in person's, else the first;
    and every company to choose from. An unknown code is a 422 naming ``company``."""
    codes = company_codes(session)
    asked = (request.values.get("company") or "").strip()
    if asked:
        if asked not in codes:
            raise ValidationError("company", f"no active company {asked[:32]!r}")
        return asked, codes
    own = directory.user_context(session, me().id).get("company")
    if own in codes:
        return str(own), codes
    if not codes:
        raise ValidationError("company", "there is no company yet")
    return codes[0], codes


def period_arg(name: str = "period", required: bool = False) -> str | None:
    """A ``YYYY-MM`` month from the query or form, or None when absent and not required."""
    value = (request.values.get(name) or "").strip()
    if not value:
        if required:
            raise ValidationError(name, "is required (a month like 2026-01)")
        return None
    if not PERIOD.match(value):
        raise ValidationError(name, "must be a month like 2026-01")
    return value


def year_arg(name: str = "year") -> int:
    value = (request.values.get(name) or "").strip()
    if not value:
        return date.today().year
    if not value.isdigit() or not 1900 <= int(value) <= 9999:
        raise ValidationError(name, "must be a year like 2026")
    return int(value)


def page_arg() -> int:
    value = request.args.get("page") or "1"
    if not value.isdigit() or not 1 <= int(value) <= 100_000:
        raise ValidationError("page", "must be a whole number from 1")
    return int(value)


def period_arg_value(value: str, name: str = "period") -> str:
    """``value`` checked as a ``YYYY-MM`` month (a 422 naming ``name`` otherwise)."""
    if not PERIOD.match(value):
        raise ValidationError(name, "must be a month like 2026-01")
    return value

