"""Posting template files: the shipped ones load; bad files name the file, path and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from yinfin_flow.config import PROJECT_ROOT
from yinfin_flow.domain.journal import TemplateError
from yinfin_flow.ledger import templates

GOOD = """\
name: expense.approved
summary: "报销 {document.title}"
lines:
  - {side: debit, account: line.account, amount: gross, per: line, cost_centre: true}
  - {side: credit, account: "2241", amount: gross, per: currency, partner: document}
"""


def test_shipped_templates_load():
    found = templates.load_all(PROJECT_ROOT / "workflows")
    assert set(found) >= {"expense.approved", "expense.paid", "purchase.invoice_matched", "purchase.paid"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "postings").mkdir(exist_ok=True)
    (tmp_path / "postings" / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        (GOOD.replace("side: debit", "side: debet"), "lines[0].side", "Must be one of"),
        (GOOD.replace("amount: gross, per: line", "amount: net, per: line"), "lines", "does not balance"),
        (GOOD.replace("per: currency, partner", "per: currency, cost_centre: true, partner"),
         "lines[1]", "only per: line lines can carry cost_centre"),
        (GOOD.replace("{document.title}", "{document.title"), "summary", "placeholders"),
        (GOOD.replace("summary:", "sumary:"), "", ""),
        ("- just a list\n", "", "a template is a mapping"),
        ("name: [unclosed\n", "", "not valid YAML"),
    ],
)
def test_bad_template_names_file_path_and_problem(tmp_path, text, path, problem):
    root = write(tmp_path, "expense.approved.yaml", text)
    with pytest.raises(TemplateError) as err:
        templates.get("expense.approved", root)
    assert err.value.details["file"] == "expense.approved.yaml"
    assert err.value.message.startswith("expense.approved.yaml: ")
    if path:
        assert err.value.details["path"].startswith(path)
    assert problem in err.value.message


def test_name_must_match_file_and_unknown_template_is_clear(tmp_path):
    root = write(tmp_path, "other.name.yaml", GOOD)
    with pytest.raises(TemplateError, match="must match the file name"):
        templates.get("other.name", root)
    with pytest.raises(TemplateError, match="no posting template 'nope.nope'"):
        templates.get("nope.nope", root)
