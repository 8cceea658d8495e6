"""What the server's statistics say about a run's tables (PostgreSQL).

:func:`seq_reads` counts the rows read by sequential scans of some tables: a timed
run that reads a growing table sequentially makes each transaction dearer than the
last, which a rate over the whole run hides (bench/README.md, "A foreign-key check
planned for an empty table").
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import bindparam, text

from yinfin_flow.db.engine import Database

#: Seconds for ended backends to report their table counts (PostgreSQL 15 flushes
#: them when a session ends, a moment after the client has gone).
STATS_SETTLE = 0.5

_SEQ_READS = text("SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables "
                  "WHERE relname IN :names").bindparams(bindparam("names", expanding=True))


def seq_reads(db: Database, tables: Iterable[str]) -> int:
    """Rows read so far by sequential scans of ``tables``, counted by every session
    that has ended. ``db`` holds no connection afterwards (benchmark clients fork)."""
    db.dispose()  # a backend reports its counts when its session ends
    time.sleep(STATS_SETTLE)
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(_SEQ_READS, {"names": list(tables)}).scalar_one())
    finally:
        db.dispose()
