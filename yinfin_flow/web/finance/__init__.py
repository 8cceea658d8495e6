"""Finance's pages: budgets, journals, imports, rules and simulation on the budget side;
periods, vouchers, reports, operations and workflow definitions on the books side.

Each module has ``register(bp)``, which adds its views to the console's blueprint and
its entries to :data:`NAV`; templates live under ``templates/yinfin/finance/``. The
top bar shows :data:`NAV` to finance users and admins, in the order given by
:data:`MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Any

from flask import Blueprint

# The order of the finance menu.
MODULES = ["budget", "journals", "imports", "rules", "simulate",
           "periods", "vouchers", "reports", "operations", "workflows"]

# (endpoint, label, roles that see it): filled in by each module's register().
NAV: list[tuple[str, Any, frozenset[str]]] = []


def add_nav(endpoint: str, label: Any, roles: frozenset[str]) -> None:
    """Add a menu entry once: every app made in the process registers the pages again
    (tests make many), and the menu is the module's, not the app's."""
    if all(known != endpoint for known, _label, _roles in NAV):
        NAV.append((endpoint, label, roles))


def register(bp: Blueprint) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue
            raise
        module.register(bp)


def nav_for(roles: frozenset[str]) -> list[tuple[str, Any]]:
    """The finance menu entries a person with ``roles`` sees."""
    return [(endpoint, label) for endpoint, label, who in NAV if roles & who]
