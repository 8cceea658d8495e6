"""A small, safe expression language for routing conditions in workflow definitions.

Finance and integrators write conditions such as::

    form.amount > 5000 and requester.department in ['RD', 'RD-APP']
    any(form.lines, it.item == 'TRAVEL' && it.amount >= 2000)
    startswith(lower(form.category), 'it-') or date(form.needed_by) < date('2026-07-01')

The text is tokenised and parsed here (recursive descent); nothing is ever handed to
``eval``/``exec`` and no Python attribute is ever read: names are looked up in the
mapping passed to :meth:`Expr.evaluate`, dotted paths and ``[i]`` only index mappings
and lists. The same source always means the same thing.

Grammar (lowest precedence first)::

    expr       := or
    or         := and (('or' | '||') and)*
    and        := not (('and' | '&&') not)*
    not        := ('not' | '!') not | comparison
    comparison := sum (('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in') sum)?
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := '-' unary | postfix
    postfix    := primary ('.' NAME | '[' expr ']')*
    primary    := NUMBER | STRING | 'true' | 'false' | 'null' | '[' (expr (',' expr)*)? ']'
                | NAME '(' (expr (',' expr)*)? ')' | NAME | '(' expr ')'

* ``NUMBER`` is ``123`` or ``123.45`` and is always a ``Decimal`` (never a float).
  ``STRING`` is ``'...'`` or ``"..."`` with ``\\\\``, ``\\'``, ``\\"``, ``\\n``, ``\\t`` escapes.
* Comparisons do not chain (``a < b < c`` is a syntax error: write ``a < b and b < c``).
* Names starting with ``__`` are refused; only the functions below exist.

Values and rules callers may rely on:

* A missing name, a missing key, an index out of range, or a path through something that
  is not a mapping/list all evaluate to ``null`` (never an error): a condition on a field
  the form does not have is simply false.
* Numbers from the context (``int``, ``float``, ``Decimal``) become ``Decimal``; floats go
  through their shortest ``repr`` (``0.1`` is ``Decimal('0.1')``). A string that is a
  plain number (``"1200.50"``, as JSON money arrives) counts as a number when compared
  with or combined with a number. An ISO date string counts as a date next to a date.
* ``< <= > >=`` with ``null`` on either side are false; ``==``/``!=`` treat ``null`` as a
  value. ``true`` never equals ``1``. Ordering text against a number (other than a
  numeric string) is an evaluation error.
* ``+ - * /`` work on numbers (``+`` also joins two strings or two lists); any ``null``
  operand makes the result ``null``. Arithmetic uses 34 significant digits, rounding
  half-up; division by zero is an evaluation error.
* ``x in list`` uses ``==`` above; ``x in 'text'`` is a substring test; ``x in mapping``
  tests for a key; ``x in null`` is false.
* ``and``/``or``/``not`` return booleans and short-circuit; "false-ish" values are
  ``null``, ``false``, ``0``, ``''`` and empty lists/mappings.

Functions: ``len(x)`` (null is 0), ``sum(list)`` / ``sum(list, 'field')`` (nulls skipped),
``any(list)`` / ``all(list)`` / ``any(list, predicate)`` / ``all(list, predicate)`` (the
predicate sees each element as ``it``), ``min(a, b, ...)``, ``max(a, b, ...)``, ``abs(x)``,
``lower(s)``, ``upper(s)``, ``startswith(s, prefix)``, ``endswith(s, suffix)``,
``date('2026-01-01')``.

Errors: :func:`compile` raises :class:`ExprError` (with the 0-based ``position`` in the
source) for syntax errors, unknown functions, wrong argument counts, and sources longer
than :data:`MAX_SOURCE` or nested deeper than :data:`MAX_DEPTH`. :meth:`Expr.evaluate`
raises only :class:`ExprError` (``position`` of the operator at fault).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, DecimalException, InvalidOperation
from typing import Any

from .errors import DomainError

MAX_SOURCE = 4000
MAX_DEPTH = 60

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


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[0-9]+(?:\.[0-9]+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[^\W\d]\w*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/()\[\],.])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # number | string | name | op | end
    text: str
    pos: int
    value: Any = None


def _unescape(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]  # the token pattern guarantees a character follows
            if nxt not in _ESCAPES:
                raise ExprError(f"unknown escape \\{nxt} in string", pos + 1 + i)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokenize(source: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            ch = source[pos]
            if ch in "'\"":
                raise ExprError("unterminated string", pos)
            raise ExprError(f"unexpected character {ch!r}", pos)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "number":
            toks.append(_Tok(kind, text, pos, Decimal(text)))
        elif kind == "string":
            toks.append(_Tok(kind, text, pos, _unescape(text[1:-1], pos)))
        elif kind in ("name", "op"):
            toks.append(_Tok(kind, text, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(source)))
    return toks


# --------------------------------------------------------------------------- values

Fn = Callable[[Mapping[str, Any]], Any]


def _norm(value: Any, pos: int) -> Any:
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
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
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


def _truthy(value: Any) -> bool:
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
            _eq(_norm(x, 0), _norm(y, 0)) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(_norm(a[k], 0), _norm(b[k], 0)) for k in a)
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
        return any(_eq(item, _norm(c, pos)) for c in container)
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
        return _norm(value.get(key), pos) if isinstance(key, str) else None
    if isinstance(value, (list, tuple, str)) and isinstance(key, Decimal) and not isinstance(key, bool):
        if key != key.to_integral_value() or abs(key) > len(value):
            return None
        i = int(key)
        return _norm(value[i], pos) if -len(value) <= i < len(value) else None
    return None


def _items(value: Any, fname: str, pos: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ExprError(f"{fname}() needs a list, not {_type_name(value)}", pos)
    return [_norm(v, pos) for v in value]


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


def _fn_date(pos: int, s: Any) -> date | None:
    if s is None:
        return None
    d = _as_date(s) if isinstance(s, (str, date)) else None
    if d is None:
        raise ExprError(f"date() needs an ISO date like '2026-01-01', not {s!r}", pos)
    return d


# name -> (implementation, min args, max args); any/all are handled by the parser.
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "len": (_fn_len, 1, 1),
    "sum": (_fn_sum, 1, 2),
    "min": (_fn_minmax("min"), 1, 50),
    "max": (_fn_minmax("max"), 1, 50),
    "abs": (_fn_abs, 1, 1),
    "lower": (_text_fn("lower", str.lower), 1, 1),
    "upper": (_text_fn("upper", str.upper), 1, 1),
    "startswith": (_affix_fn("startswith", True), 2, 2),
    "endswith": (_affix_fn("endswith", False), 2, 2),
    "date": (_fn_date, 1, 1),
}
_QUANTIFIERS = ("any", "all")
FUNCTIONS = frozenset([*_FUNCTIONS, *_QUANTIFIERS])


# --------------------------------------------------------------------------- parser


@dataclass(slots=True)
class _Node:
    fn: Fn
    depth: int
    literal: bool = False  # a constant (lets sum()'s field be checked at compile time)
    value: Any = None


@dataclass
class Expr:
    """A compiled expression: evaluate it as often as you like; it holds no state."""

    source: str
    names: frozenset[str]
    _root: Fn = field(repr=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression in ``context``; raises only :class:`ExprError`."""
        try:
            return self._root(context)
        except ExprError:
            raise
        except (DecimalException, RecursionError) as err:
            raise ExprError(f"cannot evaluate: {err.__class__.__name__}") from None

    def matches(self, context: Mapping[str, Any]) -> bool:
        """The expression's truth value (see the module docstring for false-ish values)."""
        return _truthy(self.evaluate(context))


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = _tokenize(source)
        self.i = 0
        self.names: set[str] = set()
        self.bound: list[str] = []  # names bound by any()/all() predicates
        self.level = 0  # recursion guard: nesting is refused before Python's stack runs out

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at(self, *texts: str) -> bool:
        t = self.tok
        return t.kind in ("op", "name") and t.text in texts

    def take(self) -> _Tok:
        t = self.tok
        self.i += 1
        return t

    def expect(self, text: str) -> _Tok:
        if not self.at(text):
            raise ExprError(f"expected {text!r}, found {self._describe(self.tok)}", self.tok.pos)
        return self.take()

    @staticmethod
    def _describe(t: _Tok) -> str:
        return "end of expression" if t.kind == "end" else repr(t.text)

    @staticmethod
    def _node(fn: Fn, *children: _Node) -> _Node:
        depth = 1 + max((c.depth for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")
        return _Node(fn, depth)

    def parse(self) -> _Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {self._describe(self.tok)}", self.tok.pos)
        return node

    def _enter(self) -> None:
        self.level += 1
        if self.level > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels", self.tok.pos)

    def expr(self) -> _Node:
        self._enter()
        try:
            return self.or_()
        finally:
            self.level -= 1

    def or_(self) -> _Node:
        left = self.and_()
        while self.at("or", "||"):
            self.take()
            right = self.and_()
            left = self._node(_or(left.fn, right.fn), left, right)
        return left

    def and_(self) -> _Node:
        left = self.not_()
        while self.at("and", "&&"):
            self.take()
            right = self.not_()
            left = self._node(_and(left.fn, right.fn), left, right)
        return left

    def not_(self) -> _Node:
        if self.at("not", "!"):
            self.take()
            self._enter()
            try:
                inner = self.not_()
            finally:
                self.level -= 1
            f = inner.fn
            return self._node(lambda c: not _truthy(f(c)), inner)
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.sum_()
        op_tok = self.tok
        if self.at("not") and self.toks[self.i + 1].text == "in" and self.toks[self.i + 1].kind == "name":
            self.i += 2
            op = "not in"
        elif self.at("==", "!=", "<", "<=", ">", ">=", "in"):
            op = self.take().text
        else:
            return left
        right = self.sum_()
        if self.at("==", "!=", "<", "<=", ">", ">=", "in") or (
            self.at("not") and self.toks[self.i + 1].text == "in"
        ):
            raise ExprError("comparisons do not chain: join them with 'and'", self.tok.pos)
        return self._node(_compare(op, left.fn, right.fn, op_tok.pos), left, right)

    def sum_(self) -> _Node:
        left = self.product()
        while self.at("+", "-"):
            t = self.take()
            right = self.product()
            left = self._node(_binary(t.text, left.fn, right.fn, t.pos), left, right)
        return left

    def product(self) -> _Node:
        left = self.unary()
        while self.at("*", "/"):
            t = self.take()
            right = self.unary()
            left = self._node(_binary(t.text, left.fn, right.fn, t.pos), left, right)
        return left

    def unary(self) -> _Node:
        if self.at("-"):
            t = self.take()
            self._enter()
            try:
                inner = self.unary()
            finally:
                self.level -= 1
            f = inner.fn
            zero = _const(Decimal(0))
            return self._node(_binary("-", zero, f, t.pos), inner)
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while self.at(".", "["):
            t = self.take()
            if t.text == ".":
                name = self.tok
                if name.kind != "name":
                    raise ExprError(f"expected a field name after '.', found {self._describe(name)}", name.pos)
                self._check_name(name)
                self.take()
                node = self._node(_index(node.fn, _const(name.text), t.pos), node)
            else:
                key = self.expr()
                self.expect("]")
                node = self._node(_index(node.fn, key.fn, t.pos), node, key)
        return node

    def primary(self) -> _Node:
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return _Node(_const(t.value), 1, True, t.value)
        if t.kind == "name":
            if t.text in ("true", "false", "null"):
                self.take()
                value = {"true": True, "false": False, "null": None}[t.text]
                return _Node(_const(value), 1, True, value)
            if t.text in _KEYWORDS:
                raise ExprError(f"unexpected {t.text!r}", t.pos)
            self._check_name(t)
            self.take()
            if self.at("("):
                return self.call(t)
            return self.name(t)
        if self.at("("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        if self.at("["):
            self.take()
            items: list[_Node] = []
            if not self.at("]"):
                items.append(self.expr())
                while self.at(","):
                    self.take()
                    items.append(self.expr())
            self.expect("]")
            fns = [n.fn for n in items]
            return self._node(lambda c: [f(c) for f in fns], *items)
        if t.kind == "end":
            raise ExprError("expression ends too early", t.pos)
        raise ExprError(f"unexpected {self._describe(t)}", t.pos)

    @staticmethod
    def _check_name(t: _Tok) -> None:
        if t.text.startswith("__"):
            raise ExprError(f"names starting with '__' are not allowed: {t.text!r}", t.pos)

    def name(self, t: _Tok) -> _Node:
        if t.text not in self.bound:
            self.names.add(t.text)
        key, pos = t.text, t.pos
        return _Node(lambda c: _norm(c.get(key), pos), 1)

    def call(self, t: _Tok) -> _Node:
        fname = t.text
        if fname not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExprError(f"unknown function {fname!r} (known: {known})", t.pos)
        self.expect("(")
        args: list[_Node] = []
        if not self.at(")"):
            args.append(self.expr())
            while self.at(","):
                self.take()
                if fname in _QUANTIFIERS and len(args) == 1:
                    self.bound.append("it")
                    try:
                        args.append(self.expr())
                    finally:
                        self.bound.pop()
                else:
                    args.append(self.expr())
        self.expect(")")
        if fname in _QUANTIFIERS:
            if len(args) not in (1, 2):
                raise ExprError(f"{fname}() takes a list and an optional predicate", t.pos)
            return self._node(_quantifier(fname, [a.fn for a in args], t.pos), *args)
        impl, lo, hi = _FUNCTIONS[fname]
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"{fname}() takes {want} argument(s), got {len(args)}", t.pos)
        if fname == "sum" and len(args) == 2 and not (args[1].literal and isinstance(args[1].value, str)):
            raise ExprError("sum()'s second argument must be a field name in quotes", t.pos)
        if fname == "date" and args[0].literal:
            _fn_date(t.pos, args[0].value)  # a bad literal date is a compile-time error
        fns = [a.fn for a in args]
        pos = t.pos
        return self._node(lambda c: impl(pos, *[f(c) for f in fns]), *args)


def _const(value: Any) -> Fn:
    return lambda _c: value


def _or(a: Fn, b: Fn) -> Fn:
    return lambda c: _truthy(a(c)) or _truthy(b(c))


def _and(a: Fn, b: Fn) -> Fn:
    return lambda c: _truthy(a(c)) and _truthy(b(c))


def _compare(op: str, a: Fn, b: Fn, pos: int) -> Fn:
    if op == "==":
        return lambda c: _eq(a(c), b(c))
    if op == "!=":
        return lambda c: not _eq(a(c), b(c))
    if op == "in":
        return lambda c: _contains(a(c), b(c), pos)
    if op == "not in":
        return lambda c: not _contains(a(c), b(c), pos)
    return lambda c: _order(op, a(c), b(c), pos)


def _binary(op: str, a: Fn, b: Fn, pos: int) -> Fn:
    return lambda c: _arith(op, a(c), b(c), pos)


def _index(base: Fn, key: Fn, pos: int) -> Fn:
    return lambda c: _get(base(c), key(c), pos)


def _quantifier(fname: str, fns: Sequence[Fn], pos: int) -> Fn:
    agg = builtins.any if fname == "any" else builtins.all
    items_fn = fns[0]
    if len(fns) == 1:
        return lambda c: agg(_truthy(v) for v in _items(items_fn(c), fname, pos))
    pred = fns[1]

    def run(c: Mapping[str, Any]) -> bool:
        items = _items(items_fn(c), fname, pos)
        # The element is visible as ``it``; every other name still comes from ``c``.
        return agg(_truthy(pred(_With(c, it))) for it in items)

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


def compile(source: str) -> Expr:  # noqa: A001 - the contract's name; shadows builtins here only
    """Parse ``source`` into an :class:`Expr`; raises :class:`ExprError` on any problem."""
    if not isinstance(source, str):
        raise ExprError("an expression must be text")
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters", MAX_SOURCE)
    if not source.strip():
        raise ExprError("expression is empty", 0)
    parser = _Parser(source)
    try:
        root = parser.parse()
    except RecursionError:
        raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    except InvalidOperation:
        raise ExprError("number out of range") from None
    return Expr(source, frozenset(parser.names), root.fn)
