"""Plumbing every ``yinfin-flow`` command shares: the database, errors, actors, tables.

- :func:`unit_of_work`: one transaction on ``Settings.from_env().database_url``.
- :func:`handle_errors`: a :class:`DomainError` prints ``error <code>: <message>`` and its
  details on stderr and exits 1 (no traceback); a database without tables says to run
  ``yinfin-flow db upgrade``.
- :func:`actor_option`: ``--actor``, else ``$YINFIN_ACTOR`` (neither: a usage error, exit 2);
  :func:`directory_actor` checks it names an active person of the directory,
  :func:`cli_actor` one holding ``finance`` (exit 1 otherwise).
- :func:`table`: a plain text table that lines up Chinese text too.
- output, progress and exit codes live in :mod:`.output`.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import IO, Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from yinfin_flow.config import ConfigError, Settings
from yinfin_flow.db.engine import Database
from yinfin_flow.db.models import BudgetLine
from yinfin_flow.domain.budget import DEFAULT_RULE, ControlRule, Mode
from yinfin_flow.domain.errors import DomainError, ValidationError
from yinfin_flow.domain.limits import check_json_text, check_size
from yinfin_flow.domain.money import MINOR_UNITS

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    return Settings.from_env()


@contextmanager
def unit_of_work(readonly: bool = False) -> Iterator[Session]:
    """One transaction on the configured database; the engine is disposed after."""
    s = settings()
    db = Database(s.database_url, schema=s.database_schema)
    try:
        with db.unit_of_work(readonly=readonly) as session:
            yield session
    finally:
        db.dispose()


@contextmanager
def read_unit_of_work() -> Iterator[Session]:
    """A read-only transaction on ``YINFIN_DATABASE_READ_URL`` when set (a replica), else on
    the primary: for reads that may lag (reports, the budget tree, exports, simulation)."""
    s = settings()
    db = Database(s.database_read_url or s.database_url, schema=s.database_schema)
    try:
        with db.unit_of_work(readonly=True) as session:
            yield session
    finally:
        db.dispose()


def read_json(payload: IO[str]) -> dict[str, Any]:
    """A JSON object from a file given to a command, within the configured limits (size,
    nesting, string length). Numbers with a fraction or an exponent stay text, so an
    amount written ``1e2`` meets the money grammar (and is refused) as it would over HTTP."""
    limits = settings().limits
    text = payload.read(limits.max_file_bytes + 1)
    check_size(len(text.encode("utf-8")), limits.max_file_bytes, "file")
    check_json_text(text, limits)
    try:
        data = json.loads(text, parse_float=str)
    except ValueError as err:
        raise ValidationError("file", f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValidationError("file", "must hold one JSON object")
    return data


def default_rule() -> ControlRule:
    mode = settings().default_control_mode
    return DEFAULT_RULE if mode == "hard" else ControlRule(mode=Mode(mode))


def handle_errors(fn: F) -> F:
    """Turn domain and configuration errors into a clear message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as err:
            click.echo(f"error {err.code}: {err.message}", err=True)
            for key, value in err.details.items():
                if key == "errors" and isinstance(value, list):
                    for e in value:
                        click.echo(f"  row {e['row']}, {e['column']}: {e['problem']}", err=True)
                elif key not in ("problem",):
                    click.echo(f"  {key}: {value}", err=True)
            raise SystemExit(1) from None
        except ConfigError as err:
            click.echo(f"error config: {err}", err=True)
            raise SystemExit(1) from None
        except (OperationalError, ProgrammingError) as err:
            text = str(err.orig if err.orig is not None else err)
            if "no such table" in text or "does not exist" in text:
                click.echo("error no_schema: the database has no tables yet; "
                           "run `yinfin-flow db upgrade` first", err=True)
                raise SystemExit(1) from None
            raise

    return wrapper  # type: ignore[return-value]


ACTOR_ENV = "YINFIN_ACTOR"


def _actor_given(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None or not value.strip():
        raise click.UsageError(f"who is acting is required: give --actor PERSON or set {ACTOR_ENV}", ctx=ctx)
    return value.strip()


def actor_option(fn: F) -> F:
    """``--actor PERSON`` (else ``$YINFIN_ACTOR``): who acts, a person of the directory."""
    return click.option(
        "--actor", envvar=ACTOR_ENV, show_envvar=True, callback=_actor_given,
        help="Who is acting: a person of the directory (recorded with the change).",
    )(fn)


def require_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise ValidationError("actor", f"who is acting is required (--actor or {ACTOR_ENV})")


def directory_actor(session: Session, actor: str) -> str:
    """``actor`` (a ``cli:`` prefix allowed) once it is an active person of the directory:
    the person's id."""
    from yinfin_flow.budget.journal_proposals import UnknownPerson
    from yinfin_flow.budget.rule_changes import person
    from yinfin_flow.db.models.org import User

    require_actor(actor)
    who = person(actor.strip())
    if session.scalar(select(User.id).where(User.id == who, User.active.is_(True))) is None:
        raise UnknownPerson(f"{who!r} is not an active person in the directory (--actor / {ACTOR_ENV})",
                           field="actor", actor=who)
    return who


class NotFinance(DomainError):
    code = "forbidden"
    http_status = 403


def cli_actor(session: Session, actor: str) -> str:
    """``cli:<actor>`` once ``actor`` is an active person of the directory holding ``finance``
    (a shell cannot prove who types, but it can refuse names nobody holds)."""
    from yinfin_flow.engine.directory import roles_of

    who = directory_actor(session, actor)
    if "finance" not in {g.role for g in roles_of(session, who)}:
        raise NotFinance(f"{who} does not hold the finance role: budgets are finance's",
                         field="actor", actor=who)
    return f"cli:{who}"


def find_line(session: Session, ref: str, field: str = "line") -> BudgetLine:
    """A line by code, or by numeric id when no line has that code."""
    line = session.scalar(select(BudgetLine).where(BudgetLine.code == ref))
    if line is None and ref.isdigit():
        line = session.get(BudgetLine, int(ref))
    if line is None:
        raise ValidationError(field, f"no budget line {ref!r}")
    return line


def money(value: Decimal, currency: str) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))):,}"


def width(text: str) -> int:
    """Terminal columns ``text`` takes (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    cols = list(zip(header, *rows, strict=False)) if rows else [(h,) for h in header]
    widths = [max(width(c) for c in col) for col in cols]

    def fmt(row: Sequence[str]) -> str:
        cells = []
        for i, c in enumerate(row):
            pad = " " * (widths[i] - width(c))
            cells.append(pad + c if i in right else c + pad)
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])
