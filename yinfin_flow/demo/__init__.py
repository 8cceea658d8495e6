"""Demo organisation for ``make run``: each area contributes one loader, run in order.

Loaders take a session and the settings and must be deterministic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

# Order matters: budgets first, then what builds on them.
LOADERS = ["budgets", "org", "ledger", "requests", "attachments", "finance"]


def loaders() -> list[tuple[str, Callable[[Session], None]]]:
    out = []
    for name in LOADERS:
        try:
            module = importlib.import_module(f"yinfin_flow.demo.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"yinfin_flow.demo.{name}":
                continue
            raise
        out.append((name, module.load))
    return out
