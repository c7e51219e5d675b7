"""Schema management: run the Alembic migrations and check the store's revision.

:data:`SCHEMA_REVISION` is the revision this code expects; a test checks that
it is the head of ``mirrorscale.migrations``. :func:`ensure_schema` reads the
version table (cheap) and upgrades only when the store is behind, under a
lock so that several processes starting at once migrate it exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

VERSION_TABLE = "alembic_version_mirrorscale"
SCHEMA_REVISION = "20261204_0004"
"""Head revision of the migrations this code was written for."""

_PG_LOCK_KEY = 0x6D697272  # "mirr": advisory lock id for migrations on PostgreSQL


class SchemaError(RuntimeError):
    """The store's schema is not usable by this version of mirrorscale."""


def migrations_dir() -> Path:
    """The folder of the Alembic environment (inside the installed package)."""
    import mirrorscale.migrations

    return Path(mirrorscale.migrations.__file__).parent


def alembic_config(connection: Connection):  # type: ignore[no-untyped-def]
    """An Alembic ``Config`` that runs on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("version_table", VERSION_TABLE)
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s"
    )
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the store is at, or None when it has no mirrorscale tables."""
    with engine.connect() as conn:
        return _current(conn)


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the store forward to ``revision`` (default: the newest)."""
    from alembic import command

    with _migration_lock(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the store back to ``revision``; ``base`` removes every mirrorscale table."""
    from alembic import command

    with _migration_lock(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade the store to :data:`SCHEMA_REVISION` if it is behind; fail if it is ahead.

    Safe to call from many processes at once: PostgreSQL migrations hold an
    advisory lock, SQLite ones the database's write lock; a process that loses
    the race finds the store already migrated.
    """
    if current_revision(engine) == SCHEMA_REVISION:
        return
    for attempt in range(5):
        try:
            with _migration_lock(engine) as conn:
                found = _current(conn)
                if found == SCHEMA_REVISION:
                    return
                if found is not None and not _is_known(found):
                    raise SchemaError(
                        f"the store is at revision {found}, newer than this mirrorscale "
                        f"({SCHEMA_REVISION}); upgrade the mirrorscale package"
                    )
                from alembic import command

                command.upgrade(alembic_config(conn), SCHEMA_REVISION)
                return
        except SchemaError:
            raise
        except Exception:  # another process migrating at the same moment
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
            if current_revision(engine) == SCHEMA_REVISION:
                return


def _is_known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    return any(rev.revision == revision for rev in script.walk_revisions())


class _migration_lock:
    """Context manager: a connection holding the store's migration lock, committed on exit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        self.conn = self.engine.connect()
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            # mirrorscale's connections commit asynchronously (store.engine); a schema change waits for the disk
            self.conn.execute(text("SET LOCAL synchronous_commit TO on"))
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        assert self.conn is not None
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
            if self.conn.dialect.name == "postgresql":
                self.conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                self.conn.commit()
        finally:
            self.conn.close()
