"""Budget resources of the HTTP API (``/api/v1/budget/…``)."""

from . import journals as _journals  # noqa: F401 - registers its routes on blp
from . import rule_changes as _rule_changes  # noqa: F401 - registers its routes on blp
from . import simulation as _simulation  # noqa: F401 - registers its routes on blp
from .views import blp

__all__ = ["blp"]
