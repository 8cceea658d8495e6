"""What finance finds waiting in the demo (runs after the requests loader):

- a rule change on ``ACME/<current month>/SALES/TRAVEL`` proposed by fiona and awaiting
  a second finance reviewer (frank): soft control with 10 % tolerance becomes hard
  with 80 % warn / 100 % block; its simulation replays the month's claims, among them
  carol's trade-fair claim that the proposed rule would have refused;
- a budget transfer proposed by frank and awaiting fiona: 3,000.00 from
  ``ACME/<current month>/HQ/OFFICE`` to ``ACME/<current month>/SALES-EAST/TRAVEL``.

Both are ordinary proposals (:mod:`yinfin_flow.budget.rule_changes`,
:mod:`yinfin_flow.budget.journal_proposals`): the proposer can never approve them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yinfin_flow.budget import journal_proposals, rule_changes
from yinfin_flow.db.models import BudgetLine

from . import dates
from .budgets import line_code

#: (cost centre, item) of the line whose rule change is pending, and the proposed rule
RULE_LINE = ("SALES", "TRAVEL")
PROPOSED_RULE = {
    "mode": "hard", "tolerance_percent": "0",
    "thresholds": [{"percent": "80", "action": "warn", "notify": True},
                   {"percent": "100", "action": "block", "notify": True}],
}
#: the pending transfer: from, to (cost centre, item) in the current month, and amount
TRANSFER = (("HQ", "OFFICE"), ("SALES-EAST", "TRAVEL"), "3000.00")


def _line(session: Session, cc: str, item: str) -> int:
    code = line_code(dates.period(dates.current_month()), cc, item)
    line_id = session.scalar(select(BudgetLine.id).where(BudgetLine.code == code))
    if line_id is None:
        raise LookupError(f"demo budget line {code} is missing (run the budgets loader first)")
    return int(line_id)


def load(session: Session) -> None:
    """Leave a rule change and a budget transfer waiting for review (the caller commits)."""
    rule_changes.propose(
        session, _line(session, *RULE_LINE), actor="fiona",
        reason="差旅超支频繁，改为刚性控制 Sales travel overruns every month: make it hard",
        **PROPOSED_RULE)
    (src, dst, amount) = TRANSFER
    journal_proposals.propose_transfer(
        session, _line(session, *src), _line(session, *dst), amount, actor="frank",
        reason="展会差旅超支，由总部办公费调剂 Trade-fair travel overrun covered from HQ office")
