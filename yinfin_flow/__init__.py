"""yinfin-flow: budget-linked approvals (业财融合).

``create_app`` (the standalone service) and ``YinFinFlow`` (the Flask extension)
are imported on first use, so ``import yinfin_flow.domain`` stays free of Flask.
``flask --app yinfin_flow …`` finds ``create_app`` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: The release version: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .app import create_app
    from .extension import YinFinFlow

__all__ = ["YinFinFlow", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "YinFinFlow":
        from .extension import YinFinFlow

        return YinFinFlow
    raise AttributeError(f"module 'yinfin_flow' has no attribute {name!r}")
