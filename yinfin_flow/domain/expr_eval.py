"""How expressions evaluate: values, operators and functions of :mod:`yinfin_flow.domain.expr`.

The parser in :mod:`yinfin_flow.domain.expr` turns each node into a closure built here;
the semantics (null handling, Decimal arithmetic, numeric strings, dates) are documented
in that module's docstring and implemented only here. Nothing here reads a Python
attribute: values are looked up in mappings and lists only.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from .errors import DomainError

#: Arithmetic context: exact for money, bounded so no input can make a huge number.
DECIMAL_CONTEXT = Context(prec=34, rounding=ROUND_HALF_UP, Emax=999_999, Emin=-999_999)


class ExprError(DomainError):
    """A condition could not be compiled or evaluated. ``position`` is a 0-based offset."""

    code = "invalid_expression"
    http_status = 422

    def __init__(self, message: str, position: int | None = None, *, field: str | None = None) -> None:
        where = f" (at position {position})" if position is not None else ""
        details: dict[str, Any] = {"position": position}
        if field is not None:
            details["field"] = field
        super().__init__(message + where, **details)
        self.problem = message
        self.position = position


# --------------------------------------------------------------------------- values

Fn = Callable[[Mapping[str, Any]], Any]


def norm(value: Any, pos: int) -> Any:
    """A context value as the language sees it (numbers become Decimal)."""
    if value is None or isinstance(value, (bool, str, date, Mapping)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ExprError("not a finite number", pos)
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        d = Decimal(repr(value))
        if not d.is_finite():
            raise ExprError("not a finite number", pos)
        return d
    if isinstance(value, (list, tuple)):
        return value
    raise ExprError(f"unsupported value of type {type(value).__name__}", pos)


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+(\.[0-9]+)?\s*", value):
        return Decimal(value.strip())
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, Decimal):
        return value != 0
    if isinstance(value, (str, Mapping, list, tuple)):
        return len(value) > 0
    return True


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, date):
        return "date"
    if isinstance(value, Mapping):
        return "mapping"
    return "list"


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        x, y = _as_number(a), _as_number(b)
        return x is not None and y is not None and x == y
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None) and a == b
    if isinstance(a, date) or isinstance(b, date):
        x2, y2 = _as_date(a), _as_date(b)
        return x2 is not None and y2 is not None and x2 == y2
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(
            _eq(norm(x, 0), norm(y, 0)) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(norm(a[k], 0), norm(b[k], 0)) for k in a)
    return False


def _order(op: str, a: Any, b: Any, pos: int) -> bool:
    if a is None or b is None:
        return False
    x: Any
    y: Any
    if isinstance(a, bool) or isinstance(b, bool):
        raise ExprError(f"cannot order {_type_name(a)} and {_type_name(b)} with {op}", pos)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        x, y = _as_number(a), _as_number(b)
    elif isinstance(a, datetime) and isinstance(b, datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            raise ExprError("cannot order a datetime with a time zone and one without", pos)
        x, y = a, b
    elif isinstance(a, date) or isinstance(b, date):
        x, y = _as_date(a), _as_date(b)
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        x = y = None
    if x is None or y is None:
        raise ExprError(f"cannot order {_type_name(a)} and {_type_name(b)} with {op}", pos)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def _contains(item: Any, container: Any, pos: int) -> bool:
    if container is None:
        return False
    if isinstance(container, (list, tuple)):
        return any(_eq(item, norm(c, pos)) for c in container)
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExprError(f"'in' text needs text on the left, not {_type_name(item)}", pos)
        return item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    raise ExprError(f"'in' needs a list, text or mapping on the right, not {_type_name(container)}", pos)


def _arith(op: str, a: Any, b: Any, pos: int) -> Any:
    if a is None or b is None:
        return None
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [*a, *b]
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None or isinstance(a, bool) or isinstance(b, bool):
        raise ExprError(f"cannot apply {op} to {_type_name(a)} and {_type_name(b)}", pos)
    if op == "+":
        return DECIMAL_CONTEXT.add(x, y)
    if op == "-":
        return DECIMAL_CONTEXT.subtract(x, y)
    if op == "*":
        return DECIMAL_CONTEXT.multiply(x, y)
    if y == 0:
        raise ExprError("division by zero", pos)
    return DECIMAL_CONTEXT.divide(x, y)


def _get(value: Any, key: Any, pos: int) -> Any:
    """``value.key`` / ``value[key]``: only mappings and lists, never Python attributes."""
    if isinstance(value, Mapping):
        return norm(value.get(key), pos) if isinstance(key, str) else None
    if isinstance(value, (list, tuple, str)) and isinstance(key, Decimal) and not isinstance(key, bool):
        if key != key.to_integral_value() or abs(key) > len(value):
            return None
        i = int(key)
        return norm(value[i], pos) if -len(value) <= i < len(value) else None
    return None


def _items(value: Any, fname: str, pos: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ExprError(f"{fname}() needs a list, not {_type_name(value)}", pos)
    return [norm(v, pos) for v in value]


# --------------------------------------------------------------------------- functions


def _fn_len(pos: int, x: Any) -> Decimal:
    if x is None:
        return Decimal(0)
    if isinstance(x, (str, list, tuple, Mapping)):
        return Decimal(len(x))
    raise ExprError(f"len() needs text, a list or a mapping, not {_type_name(x)}", pos)


def _fn_sum(pos: int, xs: Any, fieldname: Any = None) -> Decimal:
    total = Decimal(0)
    for item in _items(xs, "sum", pos):
        v = _get(item, fieldname, pos) if fieldname is not None else item
        if v is None:
            continue
        total = _arith("+", total, v, pos)
    return total


def _fn_minmax(which: str) -> Callable[..., Any]:
    def fn(pos: int, *args: Any) -> Any:
        vals = [a for a in args if a is not None]
        if not vals:
            return None
        best = vals[0]
        for v in vals[1:]:
            if _order("<" if which == "min" else ">", v, best, pos):
                best = v
        return best

    return fn


def _fn_abs(pos: int, x: Any) -> Any:
    if x is None:
        return None
    n = _as_number(x)
    if n is None:
        raise ExprError(f"abs() needs a number, not {_type_name(x)}", pos)
    return DECIMAL_CONTEXT.abs(n)


def _text_fn(name: str, op: Callable[[str], Any]) -> Callable[..., Any]:
    def fn(pos: int, s: Any) -> Any:
        if s is None:
            return None
        if not isinstance(s, str):
            raise ExprError(f"{name}() needs text, not {_type_name(s)}", pos)
        return op(s)

    return fn


def _affix_fn(name: str, start: bool) -> Callable[..., Any]:
    def fn(pos: int, s: Any, affix: Any) -> bool:
        if s is None or affix is None:
            return False
        if not isinstance(s, str) or not isinstance(affix, str):
            raise ExprError(f"{name}() needs text, not {_type_name(s)} and {_type_name(affix)}", pos)
        return s.startswith(affix) if start else s.endswith(affix)

    return fn


def fn_date(pos: int, s: Any) -> date | None:
    if s is None:
        return None
    d = _as_date(s) if isinstance(s, (str, date)) else None
    if d is None:
        raise ExprError(f"date() needs an ISO date like '2026-01-01', not {s!r}", pos)
    return d


# name -> (implementation, min args, max args); any/all are handled by the parser.
IMPLEMENTATIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "len": (_fn_len, 1, 1),
    "sum": (_fn_sum, 1, 2),
    "min": (_fn_minmax("min"), 1, 50),
    "max": (_fn_minmax("max"), 1, 50),
    "abs": (_fn_abs, 1, 1),
    "lower": (_text_fn("lower", str.lower), 1, 1),
    "upper": (_text_fn("upper", str.upper), 1, 1),
    "startswith": (_affix_fn("startswith", True), 2, 2),
    "endswith": (_affix_fn("endswith", False), 2, 2),
    "date": (fn_date, 1, 1),
}
QUANTIFIERS = ("any", "all")
FUNCTIONS = frozenset([*IMPLEMENTATIONS, *QUANTIFIERS])


def const(value: Any) -> Fn:
    return lambda _c: value


def either(a: Fn, b: Fn) -> Fn:
    return lambda c: truthy(a(c)) or truthy(b(c))


def both(a: Fn, b: Fn) -> Fn:
    return lambda c: truthy(a(c)) and truthy(b(c))


def compare(op: str, a: Fn, b: Fn, pos: int) -> Fn:
    if op == "==":
        return lambda c: _eq(a(c), b(c))
    if op == "!=":
        return lambda c: not _eq(a(c), b(c))
    if op == "in":
        return lambda c: _contains(a(c), b(c), pos)
    if op == "not in":
        return lambda c: not _contains(a(c), b(c), pos)
    return lambda c: _order(op, a(c), b(c), pos)


def binary(op: str, a: Fn, b: Fn, pos: int) -> Fn:
    return lambda c: _arith(op, a(c), b(c), pos)


def index(base: Fn, key: Fn, pos: int) -> Fn:
    return lambda c: _get(base(c), key(c), pos)


def quantifier(fname: str, fns: Sequence[Fn], pos: int) -> Fn:
    agg = builtins.any if fname == "any" else builtins.all
    items_fn = fns[0]
    if len(fns) == 1:
        return lambda c: agg(truthy(v) for v in _items(items_fn(c), fname, pos))
    pred = fns[1]

    def run(c: Mapping[str, Any]) -> bool:
        items = _items(items_fn(c), fname, pos)
        # The element is visible as ``it``; every other name still comes from ``c``.
        return agg(truthy(pred(_With(c, it))) for it in items)

    return run


class _With(Mapping[str, Any]):
    """``context`` with ``it`` bound to one list element (for any()/all() predicates)."""

    __slots__ = ("_base", "_it")

    def __init__(self, base: Mapping[str, Any], it: Any) -> None:
        self._base, self._it = base, it

    def __getitem__(self, key: str) -> Any:
        return self._it if key == "it" else self._base[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._it if key == "it" else self._base.get(key, default)

    def __iter__(self) -> Any:
        yield "it"
        yield from (k for k in self._base if k != "it")

    def __len__(self) -> int:
        return len(self._base) + (0 if "it" in self._base else 1)
