"""Alembic migrations of the history store (``mirrorscale.migrations``).

Versions live in ``versions/``, one dated file per revision whose docstring
says why it exists. The version table is ``alembic_version_mirrorscale`` so
the store can share a database with Airflow or Prefect. Run them with
``mirrorscale db upgrade`` (or :func:`mirrorscale.store.schema.upgrade`).
"""
