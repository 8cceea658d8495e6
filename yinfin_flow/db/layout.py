"""Where yinfin-flow's objects live in a database it shares with a host application.

PostgreSQL: every table, index, sequence and function of yinfin-flow is in a schema of
its own (``YINFIN_DATABASE_SCHEMA``, default ``yinfin``). yinfin-flow's connections are
opened with ``search_path=<schema>`` as a connection option (sent with the start-up
packet: no extra round trip, nothing to run per checkout), so every statement finds its
tables by their plain names: the ORM's, the migrations', the reports' and those sent
straight through psycopg (:mod:`yinfin_flow.db.raw`). A migration written later creates
its tables in the schema without knowing about it, and nothing in the code names a
schema. The host's connections keep their own ``search_path`` (``public``) and see
none of yinfin-flow's names; yinfin-flow's see none of the host's (``search_path`` is
the schema alone, so an unqualified name can never land on a host table).

SQLite has no schemas: yinfin-flow keeps its tables in a database file of its own
(``YINFIN_DATABASE_URL``, default ``instance/yinfin.sqlite``); a host that wants to
read them on its own connection attaches that file (:func:`attach_sqlite`), which
gives them the same ``yinfin.<table>`` names as on PostgreSQL.

Alembic's history is kept in ``yinfin_alembic_version`` (in the schema on PostgreSQL),
never in the host's ``alembic_version``.

Databases made before this layout have their tables in ``public`` and their history
in ``public.alembic_version``. :func:`prepare` (run by ``migrations/env.py`` at the
start of every migration run, in the run's transaction) takes that history over, and
until migration ``0008`` (the move) has run, the migrations also look in ``public``
for the tables the old layout left there; ``0008`` moves them into the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, event, inspect, text

VERSION_TABLE = "yinfin_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"
LEGACY_SCHEMA = "public"
#: The migration that moves an older layout's tables out of ``public``.
MOVE_REVISION = "0008"


def connect_args(schema: str, url_options: Any, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """psycopg connect arguments that open every connection in ``schema``, keeping any
    ``options`` the URL or the caller already gives."""
    args = dict(given or {})
    options = [o for o in (url_options if isinstance(url_options, str) else None,
                           args.get("options")) if o]
    args["options"] = " ".join([*options, f"-c search_path={schema}"])
    return args


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def version_table_schema(connection: Connection, schema: str) -> str | None:
    """The ``version_table_schema`` Alembic is configured with."""
    return schema if connection.dialect.name == "postgresql" else None


def prepare(connection: Connection, schema: str, known: Callable[[str], bool],
            ancestors: Callable[[tuple[str, ...]], set[str]]) -> None:
    """Before a migration run, in its transaction: make the schema, take over a history
    kept under the old names, and set the run's ``search_path``.

    ``known(revision)`` says whether a revision is one of yinfin-flow's (a host's own
    ``alembic_version`` is never touched); ``ancestors(heads)`` gives every revision at or
    below ``heads``.
    """
    if connection.dialect.name == "postgresql":
        exists = connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                                    {"s": schema}).first()
        if exists is None:  # (an administrator may have made it: then no CREATE right is needed)
            connection.execute(text(f"CREATE SCHEMA {quoted(schema)}"))
        connection.execute(text(f"SET LOCAL search_path TO {quoted(schema)}"))
        _adopt_history(connection, schema, LEGACY_SCHEMA, known)
        heads = current_heads(connection, schema)
        if heads and MOVE_REVISION not in ancestors(heads):
            # Not moved yet: the tables older migrations made may still be in public.
            connection.execute(text(
                f"SET LOCAL search_path TO {quoted(schema)}, {quoted(LEGACY_SCHEMA)}"))
    else:
        _adopt_history(connection, None, None, known)


def current_heads(connection: Connection, schema: str | None) -> tuple[str, ...]:
    if not inspect(connection).has_table(VERSION_TABLE, schema=schema):
        return ()
    table = _name(schema, VERSION_TABLE)
    return tuple(connection.execute(text(f"SELECT version_num FROM {table}")).scalars())


def _name(schema: str | None, table: str) -> str:
    return f"{quoted(schema)}.{quoted(table)}" if schema else quoted(table)


def _adopt_history(connection: Connection, schema: str | None, legacy_schema: str | None,
                   known: Callable[[str], bool]) -> None:
    """Move yinfin-flow's rows of an old ``alembic_version`` into ``yinfin_alembic_version``."""
    insp = inspect(connection)
    if insp.has_table(VERSION_TABLE, schema=schema):
        return
    if not insp.has_table(LEGACY_VERSION_TABLE, schema=legacy_schema):
        return
    legacy = _name(legacy_schema, LEGACY_VERSION_TABLE)
    rows = list(connection.execute(text(f"SELECT version_num FROM {legacy}")).scalars())
    ours = [r for r in rows if known(r)]
    if not ours:
        return  # the host's own history
    new = _name(schema, VERSION_TABLE)
    connection.execute(text(
        f"CREATE TABLE {new} (version_num VARCHAR(32) NOT NULL, "
        f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
    for rev in ours:
        connection.execute(text(f"INSERT INTO {new} (version_num) VALUES (:v)"), {"v": rev})
    if len(ours) == len(rows):
        connection.execute(text(f"DROP TABLE {legacy}"))
    else:
        for rev in ours:
            connection.execute(text(f"DELETE FROM {legacy} WHERE version_num = :v"), {"v": rev})


def drop_history(engine: Engine, schema: str) -> None:
    """After ``downgrade base``: drop the (empty) history table, and on PostgreSQL the
    schema when nothing else is left in it, so only the host's objects remain."""
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        where = schema if pg else None
        if current_heads(conn, where):
            return  # not at base (a branch is left): keep the history
        conn.execute(text(f"DROP TABLE IF EXISTS {_name(where, VERSION_TABLE)}"))
        if pg:
            left = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s"), {"s": schema}).scalar_one()
            left += conn.execute(text(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = :s"), {"s": schema}).scalar_one()
            if not left:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted(schema)}"))


def attach_sqlite(engine: Engine, path: str, name: str = "yinfin") -> None:
    """Attach yinfin-flow's SQLite file to every connection of a host's ``engine`` as
    ``name``, so the host reads ``yinfin.approval_requests`` as it would on PostgreSQL."""

    @event.listens_for(engine, "connect")
    def _attach(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"ATTACH DATABASE ? AS {quoted(name)}", (path,))
        cur.close()


def moved_tables(connection: Connection, tables: Iterable[str], schema: str) -> list[str]:
    """Of ``tables``, those still in ``public`` and not yet in ``schema``: what the move
    takes (a host's table of the same name is never taken: yinfin-flow's exists then)."""
    insp = inspect(connection)
    here = set(insp.get_table_names(schema=schema))
    there = set(insp.get_table_names(schema=LEGACY_SCHEMA))
    return [t for t in tables if t in there and t not in here]
