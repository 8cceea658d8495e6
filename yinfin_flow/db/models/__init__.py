"""Every table, imported in one place so Alembic and tests see the whole schema.

Each area owns one module; add a new area's module to the imports below.
"""

# Importing an area's module registers its tables on Base.metadata.
from . import attachments as _attachments  # noqa: F401
from . import engine as _engine  # noqa: F401
from . import journal_proposals as _journal_proposals  # noqa: F401
from . import ledger as _ledger  # noqa: F401
from . import org as _org  # noqa: F401
from . import outbox as _outbox  # noqa: F401
from . import rule_changes as _rule_changes  # noqa: F401
from . import security as _security  # noqa: F401
from .base import Base
from .budget import (
    BudgetAlert,
    BudgetBalance,
    BudgetEntry,
    BudgetLine,
    BudgetMovement,
    ControlRuleRow,
    Reservation,
)
from .masterdata import BudgetItem, BudgetPeriod, Company, CostCentre, ExchangeRate, Project

__all__ = [
    "Base",
    "BudgetAlert",
    "BudgetBalance",
    "BudgetEntry",
    "BudgetItem",
    "BudgetLine",
    "BudgetMovement",
    "BudgetPeriod",
    "Company",
    "ControlRuleRow",
    "CostCentre",
    "ExchangeRate",
    "Project",
    "Reservation",
]
