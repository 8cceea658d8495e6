"""Wiring in one place: which modules subscribe to which events.

Each area that reacts to events exposes ``register()`` in a ``handlers`` module and
is listed here.
"""

from __future__ import annotations

import importlib

HANDLER_MODULES = [
    "yinfin_flow.ledger.handlers",
    "yinfin_flow.worker.handlers",
    "yinfin_flow.attachments.handlers",
]

_wired = False


def wire() -> None:
    global _wired
    if _wired:
        return
    _wired = True
    for name in HANDLER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue  # that area has no handlers yet
            raise
        module.register()
