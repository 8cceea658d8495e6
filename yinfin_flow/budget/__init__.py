"""Budget services: the one place that changes budgets (see :class:`Budgets`)."""

from .service import Budgets, LineRequest, ReserveResult

__all__ = ["Budgets", "LineRequest", "ReserveResult"]
