"""The console's languages (zh_CN, en) and how it writes amounts and times.

The catalogues are a Flask-Babel :class:`~flask_babel.Domain` of their own, under
``translations/`` in this package, so a host application's own catalogues and ours
never mix. The language is the user's choice (kept in the session), else the
browser's Accept-Language, else Chinese.

Amounts go through :func:`yinfin_flow.domain.money.show` (what the API sends) and
are then written for the locale: the page and the API never disagree on a figure.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from babel import support
from babel.numbers import UnknownCurrencyError
from flask import Flask, request, session
from flask_babel import Babel, Domain, format_currency, format_datetime, get_locale

from yinfin_flow.domain.money import MINOR_UNITS, in_minor_units, show

TRANSLATIONS = Path(__file__).parent / "translations"
LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LANG_KEY = "yinfin_lang"

class ConsoleDomain(Domain):  # type: ignore[misc] # flask-babel is untyped
    """Our catalogues, looked up as ``zh_CN`` (Babel names the locale ``zh_Hans_CN``,
    which gettext would never find under ``translations/zh_CN``)."""

    def __init__(self) -> None:
        super().__init__(translation_directories=str(TRANSLATIONS), domain="messages")
        self._loaded: dict[str, support.Translations] = {}

    def get_translations(self) -> support.Translations:
        loc = get_locale()
        if loc is None:
            return support.NullTranslations()
        name = f"{loc.language}_{loc.territory}" if loc.territory else loc.language
        found = self._loaded.get(name)
        if found is None:
            found = support.Translations.load(str(TRANSLATIONS), [name, loc.language], "messages")
            self._loaded[name] = found
        return found


domain = ConsoleDomain()
_ = domain.gettext
lazy = domain.lazy_gettext


def select_locale() -> str:
    """The user's choice, else the best match for Accept-Language, else Chinese."""
    chosen = session.get(LANG_KEY)
    if chosen in LOCALES:
        return str(chosen)
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
    if best in ("zh_CN", "zh"):
        return "zh_CN"
    return best or DEFAULT_LOCALE


def install(app: Flask) -> None:
    """Flask-Babel on ``app`` with our locale selector, unless the host runs its own
    (then the host's selector decides the language, and our domain follows it)."""
    if "babel" not in app.extensions:
        app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
        Babel(app, locale_selector=select_locale)


def amount(value: Any, currency: str | None) -> str:
    """``value`` (Decimal or the API's text) in ``currency`` for the current locale:
    ``¥1,234.50`` in Chinese, ``CN¥1,234.50`` in English; ``—`` for nothing."""
    if value is None or value == "":
        return "—"
    number = Decimal(show(value))
    cur = (currency or "").upper()
    if cur in MINOR_UNITS:
        number = number.quantize(Decimal(1).scaleb(-MINOR_UNITS[cur]), rounding=ROUND_HALF_UP)
        try:
            return str(format_currency(number, cur))
        except UnknownCurrencyError:  # pragma: no cover - every ISO code we know Babel knows
            pass
    return f"{show(number)} {cur}".strip()


def editable(value: Any, currency: str | None) -> str:
    """An amount as a form field holds it for editing: plain digits with the currency's
    minor units (``"950.00"``), which is what the money grammar takes back. The answer
    format (``"950.0000"``) would be refused for CNY when sent again unchanged."""
    if value is None or value == "":
        return ""
    cur = (currency or "").upper()
    if cur not in MINOR_UNITS:
        return show(value)
    return in_minor_units(Decimal(show(value)), cur)


def is_negative(value: Any) -> bool:
    return value not in (None, "") and Decimal(show(value)) < 0


def negated(value: Any) -> str:
    return show(-Decimal(show(value)))


def when(value: Any, fmt: str = "short") -> str:
    """An ISO 8601 time (what the API sends) or a datetime, in the locale's format and
    the configured time zone; ``—`` for nothing."""
    if not value:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return str(format_datetime(moment, fmt))


def locale_name() -> str:
    """``zh_CN`` or ``en``: the catalogue the page is in."""
    loc = get_locale()
    if loc is None:
        return DEFAULT_LOCALE
    return f"{loc.language}_{loc.territory}" if loc.territory else str(loc.language)


#: The title the console shows above an error, per stable code (the message itself is
#: the API's wording, shown as it is).
ERROR_TITLES = {
    "validation_error": lazy("Please check the form"),
    "E1_over_budget": lazy("Over budget"),
    "E2_no_budget_line": lazy("No budget line"),
    "E3_line_closed": lazy("The budget line is closed"),
    "E4_line_on_hold": lazy("The budget line is on hold"),
    "E6_outside_budget_period": lazy("Outside the budget period"),
    "task_closed": lazy("This task is already decided"),
    "stale_request": lazy("The request changed since you opened it"),
    "forbidden": lazy("Not allowed"),
    "not_found": lazy("Not found"),
    "unauthenticated": lazy("Please sign in"),
    "invalid_action": lazy("This action is not possible now"),
    "withdraw_window_closed": lazy("Too late to withdraw"),
    "csrf_failed": lazy("The form expired; reload the page and try again"),
    "too_many_failures": lazy("Too many failed sign-ins; wait a minute"),
    "duplicate_invoice": lazy("This invoice is already claimed"),
    "attachment_too_large": lazy("The file is too large"),
    "segregation_of_duties": lazy("Another finance user decides this"),
    "budget_journal_stale": lazy("The budget changed since this was proposed"),
    "budget_journal_not_pending": lazy("This proposal is already decided"),
    "rule_change_stale": lazy("The rule changed since this was proposed"),
    "rule_change_not_pending": lazy("This rule change is already decided"),
    "rule_change_pending": lazy("A rule change for this line is already pending"),
    "import_invalid": lazy("The budget file has problems"),
    "unknown_person": lazy("Not a person in the directory"),
}


def error_title(code: str) -> str:
    title = ERROR_TITLES.get(code)
    return str(title) if title is not None else _("The action was refused")


#: Words the pages show for the engine's states, task statuses and countersign modes.
WORDS = {
    "draft": lazy("Draft"), "approval": lazy("In approval"), "sent_back": lazy("Sent back"),
    "approved": lazy("Approved"), "paid": lazy("Paid"), "rejected": lazy("Rejected"),
    "withdrawn": lazy("Withdrawn"), "cancelled": lazy("Cancelled"), "closed": lazy("Closed"),
    "pending": lazy("Pending"), "waiting": lazy("Waiting"), "held": lazy("Held"),
    "transferred": lazy("Transferred"), "auto_approved": lazy("Approved automatically"),
    "voided": lazy("Voided"),
    "all": lazy("All must approve (会签)"), "any": lazy("Any one approves (或签)"),
    "sequence": lazy("In sequence (依次)"), "quorum": lazy("Quorum"),
    "info": lazy("Info"), "warn": lazy("Warning"), "block": lazy("Blocked"),
    "hard": lazy("Hard control"), "soft": lazy("Soft control"), "track": lazy("Tracked"),
    "none": lazy("No control"),
    "approve": lazy("approve"), "reject": lazy("reject"), "send_back": lazy("send back"),
    "transfer": lazy("transfer"), "add_approver": lazy("add approver"), "withdraw": lazy("withdraw"),
    "cancel": lazy("cancel"), "submit": lazy("submit"), "resubmit": lazy("resubmit"),
    "comment": lazy("comment"),
}


def word(key: str | None) -> str:
    if key is None:
        return ""
    found = WORDS.get(key)
    return str(found) if found is not None else key
