"""Languages: every string the console shows is in the zh_CN catalogue, the committed
compiled catalogues match their sources, and pages, amounts and times follow the
user's choice, else the browser's Accept-Language."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask

from yinfin_flow.web import i18n

from .conftest import Person, text

WEB = Path(i18n.__file__).parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def _source_strings() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), METHODS, keywords={"_": None, "gettext": None, "lazy": None}):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _catalog(locale: str, kind: str = "po"):  # noqa: ANN202
    path = WEB / "translations" / locale / "LC_MESSAGES" / f"messages.{kind}"
    with open(path, "rb") as f:
        return read_po(f, locale=locale) if kind == "po" else read_mo(f)


def test_every_console_string_is_translated_to_chinese():
    strings = _source_strings()
    assert len(strings) > 150  # the extraction really read the pages
    zh = {m.id: m.string for m in _catalog("zh_CN") if m.id}
    missing = sorted(s for s in strings if not zh.get(s))
    assert missing == [], f"not in zh_CN (make babel-update, then translate): {missing}"
    en = {m.id for m in _catalog("en") if m.id}
    assert sorted(strings - en) == []


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_the_committed_mo_files_match_their_po(locale: str):
    po = {m.id: m.string for m in _catalog(locale) if m.id}
    mo = {m.id: m.string for m in _catalog(locale, "mo") if m.id}
    assert mo == po, "run make babel-compile and commit the .mo files"


def test_pages_follow_accept_language_then_the_users_choice(app: Flask):
    amy = Person(app, "amy")
    zh = amy.get("/inbox", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "待办" in text(zh) and "我的申请" in text(zh) and "Inbox" not in text(zh)
    assert 'lang="zh-CN"' in zh.get_data(as_text=True)
    en = amy.get("/inbox")
    assert "Inbox" in text(en) and "待办" not in text(en)
    amy.post("/language", {"lang": "zh_CN"})
    chosen = amy.get("/requests")  # the browser still asks for English
    assert "我的申请" in text(chosen)
    assert amy.post("/language", {"lang": "fr"}).status_code == 422


def test_amounts_and_times_per_locale(app: Flask):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert i18n.amount("1234.5", "CNY") == "CN¥1,234.50"
        assert i18n.amount("1234.5", "JPY").endswith("1,235")  # half up, as money.round
        en_time = i18n.when("2026-12-07T02:30:00+00:00")
        assert "10:30" in en_time and "AM" in en_time  # Asia/Shanghai
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert i18n.amount("1234.5", "CNY") == "¥1,234.50"
        assert i18n.amount(None, "CNY") == "—"
        zh_time = i18n.when("2026-12-07T02:30:00+00:00")
        assert zh_time != en_time and "10:30" in zh_time


def test_error_pages_are_translated_and_keep_the_code(app: Flask):
    amy = Person(app, "amy")
    resp = amy.get("/inbox?min_amount=x", headers={"Accept-Language": "zh-CN"})
    assert resp.status_code == 422
    assert "请检查表单" in text(resp) and 'data-code="validation_error"' in resp.get_data(as_text=True)
