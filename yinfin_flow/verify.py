"""``verify`` for the whole product: every invariant of DESIGN.md, on a live database.

The list is explicit (no registration at import time), so what ``yinfin-flow
verify`` checks never depends on which modules happen to have been imported.
Each area keeps its own checks beside its code; add a new area's list here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from yinfin_flow.attachments import verify as attachments_verify
from yinfin_flow.budget import journal_proposals, rule_changes
from yinfin_flow.budget import verify as budget_verify
from yinfin_flow.budget.verify import Problem
from yinfin_flow.engine import verify as engine_verify
from yinfin_flow.ledger import verify as ledger_verify
from yinfin_flow.security import audit

Check = Callable[[Session], list[Problem]]


def all_checks() -> list[Check]:
    return [*budget_verify.CHECKS, *rule_changes.CHECKS, *journal_proposals.CHECKS, *engine_verify.CHECKS,
            *ledger_verify.CHECKS, *audit.CHECKS, *attachments_verify.CHECKS]


def verify(session: Session) -> list[Problem]:
    """Run every check; return every problem found (empty when the database is sound)."""
    problems: list[Problem] = []
    for check in all_checks():
        problems.extend(check(session))
    return problems


__all__ = ["Problem", "all_checks", "verify"]
