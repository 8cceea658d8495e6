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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, InvalidOperation
from typing import Any

from .expr_eval import (
    DECIMAL_CONTEXT,
    FUNCTIONS,
    IMPLEMENTATIONS,
    QUANTIFIERS,
    ExprError,
    Fn,
    binary,
    both,
    compare,
    const,
    either,
    fn_date,
    index,
    norm,
    quantifier,
    truthy,
)

__all__ = ["DECIMAL_CONTEXT", "FUNCTIONS", "MAX_DEPTH", "MAX_SOURCE", "Expr", "ExprError", "compile"]

MAX_SOURCE = 4000
MAX_DEPTH = 60


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
        return truthy(self.evaluate(context))


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
            left = self._node(either(left.fn, right.fn), left, right)
        return left

    def and_(self) -> _Node:
        left = self.not_()
        while self.at("and", "&&"):
            self.take()
            right = self.not_()
            left = self._node(both(left.fn, right.fn), left, right)
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
            return self._node(lambda c: not truthy(f(c)), inner)
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
        return self._node(compare(op, left.fn, right.fn, op_tok.pos), left, right)

    def sum_(self) -> _Node:
        left = self.product()
        while self.at("+", "-"):
            t = self.take()
            right = self.product()
            left = self._node(binary(t.text, left.fn, right.fn, t.pos), left, right)
        return left

    def product(self) -> _Node:
        left = self.unary()
        while self.at("*", "/"):
            t = self.take()
            right = self.unary()
            left = self._node(binary(t.text, left.fn, right.fn, t.pos), left, right)
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
            zero = const(Decimal(0))
            return self._node(binary("-", zero, f, t.pos), inner)
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
                node = self._node(index(node.fn, const(name.text), t.pos), node)
            else:
                key = self.expr()
                self.expect("]")
                node = self._node(index(node.fn, key.fn, t.pos), node, key)
        return node

    def primary(self) -> _Node:
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return _Node(const(t.value), 1, True, t.value)
        if t.kind == "name":
            if t.text in ("true", "false", "null"):
                self.take()
                value = {"true": True, "false": False, "null": None}[t.text]
                return _Node(const(value), 1, True, value)
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
        return _Node(lambda c: norm(c.get(key), pos), 1)

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
                if fname in QUANTIFIERS and len(args) == 1:
                    self.bound.append("it")
                    try:
                        args.append(self.expr())
                    finally:
                        self.bound.pop()
                else:
                    args.append(self.expr())
        self.expect(")")
        if fname in QUANTIFIERS:
            if len(args) not in (1, 2):
                raise ExprError(f"{fname}() takes a list and an optional predicate", t.pos)
            return self._node(quantifier(fname, [a.fn for a in args], t.pos), *args)
        impl, lo, hi = IMPLEMENTATIONS[fname]
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"{fname}() takes {want} argument(s), got {len(args)}", t.pos)
        if fname == "sum" and len(args) == 2 and not (args[1].literal and isinstance(args[1].value, str)):
            raise ExprError("sum()'s second argument must be a field name in quotes", t.pos)
        if fname == "date" and args[0].literal:
            fn_date(t.pos, args[0].value)  # a bad literal date is a compile-time error
        fns = [a.fn for a in args]
        pos = t.pos
        return self._node(lambda c: impl(pos, *[f(c) for f in fns]), *args)


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
