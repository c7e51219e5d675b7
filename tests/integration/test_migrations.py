"""Migrations: up, down, agreement with the models, concurrency, and packaging in the wheel."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import zipfile
from pathlib import Path

from sqlalchemy import inspect, text

from mirrorscale.store import schema
from mirrorscale.store.engine import make_engine
from mirrorscale.store.models import Base

ROOT = Path(__file__).resolve().parents[2]
TABLES = {t.name for t in Base.metadata.sorted_tables}


def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    return set(inspect(engine).get_table_names())


def test_schema_revision_is_the_migrations_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(schema.migrations_dir()))
    assert script.get_heads() == [schema.SCHEMA_REVISION]


def test_upgrade_downgrade_upgrade_round_trip(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.begin() as conn:  # a table of someone else's (Airflow's, say) must survive
        conn.execute(text("CREATE TABLE other_app_table (id INTEGER PRIMARY KEY)"))
    schema.upgrade(engine)
    assert schema.current_revision(engine) == schema.SCHEMA_REVISION
    assert TABLES | {schema.VERSION_TABLE, "other_app_table"} <= _tables(engine)
    schema.downgrade(engine, "base")
    assert schema.current_revision(engine) is None
    assert _tables(engine) & TABLES == set()
    assert "other_app_table" in _tables(engine)
    schema.upgrade(engine)
    assert TABLES <= _tables(engine)
    engine.dispose()


def test_models_and_migrations_agree(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(store_url)
    schema.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(context, Base.metadata)
                if not (d[0] == "remove_table" and d[1].name == schema.VERSION_TABLE)]
    assert diff == []
    engine.dispose()


def test_a_jsonb_snapshot_column_from_the_first_0003_becomes_json_with_its_rows(postgres_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(postgres_url)
    schema.upgrade(engine, "20261127_0003")
    with engine.begin() as conn:  # what the first version of 0003 made, with a model in it
        conn.execute(text("ALTER TABLE mirrorscale_model_snapshot ALTER COLUMN state TYPE jsonb USING state::jsonb"))
        conn.execute(text("INSERT INTO mirrorscale_task (engine, pipeline_id, task_id, created_at) "
                          "VALUES ('airflow', 'etl', 'load', now())"))
        conn.execute(text("INSERT INTO mirrorscale_model_snapshot (task_pk, method, version, runs, state, updated_at) "
                          "SELECT id, 'mirrorscale', 1, 3, '{\"level\": [1.5, 2]}'::jsonb, now() FROM mirrorscale_task"))
    schema.upgrade(engine)
    with engine.connect() as conn:
        column_type = conn.execute(text("SELECT data_type FROM information_schema.columns WHERE "
                                        "table_name = 'mirrorscale_model_snapshot' AND column_name = 'state'")).scalar()
        state = conn.execute(text("SELECT state::text FROM mirrorscale_model_snapshot")).scalar()
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(context, Base.metadata)
                if not (d[0] == "remove_table" and d[1].name == schema.VERSION_TABLE)]
    assert column_type == "json"
    assert state is not None and json.loads(state) == {"level": [1.5, 2]}
    assert diff == []
    engine.dispose()


def _ensure(url: str) -> None:
    schema.ensure_schema(make_engine(url))


def test_ensure_schema_from_four_processes_at_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_ensure, args=(store_url,)) for _ in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    engine = make_engine(store_url)
    assert schema.current_revision(engine) == schema.SCHEMA_REVISION
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {schema.VERSION_TABLE}")).scalar() == 1
    engine.dispose()


def test_store_newer_than_the_code_is_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '29991231_0001'"))
    try:
        schema.ensure_schema(engine)
    except schema.SchemaError as exc:
        assert "29991231_0001" in str(exc) and "upgrade the mirrorscale package" in str(exc)
    else:
        raise AssertionError("a store from a newer mirrorscale must be refused")


def test_wheel_carries_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("mirrorscale-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in ("mirrorscale/migrations/env.py", "mirrorscale/migrations/script.py.mako",
                   "mirrorscale/store/schema.py", "mirrorscale/predictors/__init__.py",
                   "mirrorscale/plugins/airflow/__init__.py"):
        assert member in names, member
    versions = [n for n in names if n.startswith("mirrorscale/migrations/versions/2")]
    assert any(schema.SCHEMA_REVISION[-4:] in v for v in versions), versions
    assert not any(n.startswith(("plugins/", "predictors/", "migrations/")) for n in names)
