"""Alembic environment of the history store.

Runs online only, on the connection handed over in
``config.attributes["connection"]`` by :mod:`mirrorscale.store.schema`, or on
an engine made from ``sqlalchemy.url`` when Alembic is driven by hand.
"""

from __future__ import annotations

from alembic import context

from mirrorscale.store.engine import make_engine
from mirrorscale.store.models import Base
from mirrorscale.store.schema import VERSION_TABLE

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection or a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _configure_and_run(conn)


run_migrations_online()
