"""Create SQLAlchemy engines for the history store.

SQLite (the embedded default) is opened in WAL mode with a busy timeout, and
every write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent
writer processes queue on the lock instead of failing with "database is
locked" halfway through a transaction. A connection marked
``mirrorscale_autocommit`` emits no ``BEGIN`` at all (a lone ``SELECT`` is its
own transaction).

Commit durability is the same trade on both stores unless ``durable`` is asked
for (argument, or ``MIRRORSCALE_DURABLE_COMMIT=1``):

==========  ===============================  =====================================
store       default                          ``durable``
==========  ===============================  =====================================
SQLite      WAL, ``synchronous=NORMAL``:     ``synchronous=FULL``: every commit
            a commit survives a crash of     is fsynced
            the process; the newest commits
            may be lost if the machine loses
            power
PostgreSQL  ``synchronous_commit=off`` on    the server's setting (normally
            mirrorscale's own connections:   ``on``: every commit waits for
            a commit is acknowledged before  its WAL flush, ~4 ms here, p99
            its WAL flush; a crash of the    16 ms)
            *server* may lose the last
            ~0.6 s of commits, never
            half of one
==========  ===============================  =====================================

Traces are measurements, and losing the last fraction of a second of them when
the database server itself crashes costs one refit's worth of history; waiting
for a disk flush on every task run would cost every task. Migrations always
commit durably (:mod:`mirrorscale.store.schema`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 60_000
DURABLE_ENV = "MIRRORSCALE_DURABLE_COMMIT"
"""Set to ``1`` to make every commit wait for the disk (see the module table)."""


def is_sqlite(url: str) -> bool:
    """True when ``url`` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def durable_default() -> bool:
    """Whether ``MIRRORSCALE_DURABLE_COMMIT`` asks for durable commits."""
    return os.environ.get(DURABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def make_engine(url: str, *, durable: bool | None = None) -> Engine:
    """Create an engine for ``url`` with mirrorscale's connection settings.

    ``durable`` (default: :func:`durable_default`) makes every commit wait for
    the disk; see the module table for what the default trades.
    """
    durable = durable_default() if durable is None else durable
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, durable)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver the `postgres` extra installs.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # no pre-ping: HistoryStore pings in its sessions and retries its one-statement operations once on a
    # dead connection, so the hot path pays one round trip per statement, not two
    engine = create_engine(url, pool_size=5, max_overflow=5)
    if engine.dialect.name == "postgresql" and not durable:
        event.listen(engine, "connect", _asynchronous_commit)
    return engine


def _asynchronous_commit(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """``SET synchronous_commit TO off`` for this session (mirrorscale's own connections only)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET synchronous_commit TO off")
    finally:
        cursor.close()
        dbapi_connection.autocommit = autocommit


def _sqlite_engine(url: str, durable: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    synchronous = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        options = connection.get_execution_options()
        if options.get("mirrorscale_autocommit"):
            return
        mode = "DEFERRED" if options.get("mirrorscale_readonly") else "IMMEDIATE"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
