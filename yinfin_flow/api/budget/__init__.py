"""Budget resources of the HTTP API (``/api/v1/budget/…``)."""

from .views import blp

__all__ = ["blp"]
