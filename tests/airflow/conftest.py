"""Airflow test session: one throwaway ``AIRFLOW_HOME`` with a migrated SQLite metadata DB.

Runs in the Airflow venv (``.venvs/airflow``); skipped elsewhere. The session
sets ``AIRFLOW_HOME``, points the DAGs folder at ``dags_examples/airflow`` and
the history store at a fresh SQLite file, runs ``airflow db migrate`` once
(~20 s; later sessions copy a cached pristine result) and hands tests :func:`run_cli` to call ``airflow`` / ``mirrorscale``
as subprocesses of this venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="tests/airflow run in the Airflow venv (scripts/make_env.sh airflow)")

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags_examples" / "airflow"
BIN = Path(sys.executable).parent

POLICY_TOML = """
[tasks."ms_etl_daily.*"]
features = ["base_rows"]
[tasks."ms_fanout_memory.crunch"]
features = ["mb"]
"""


@dataclass
class AirflowEnv:
    """The session's Airflow home and the environment its subprocesses run with."""

    home: Path
    env: dict[str, str]
    store_url: str

    def run(self, *args: str, timeout: float = 240, extra_env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ...`` or ``mirrorscale ...`` (the first arg) from this venv."""
        env = {**self.env, **(extra_env or {})}
        started = time.monotonic()
        proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, cwd=self.home, text=True,
                              capture_output=True, timeout=timeout)
        proc.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                                 f"\n--- stderr\n{proc.stderr[-6000:]}")
        return proc

    def traces(self, store_url: str | None = None) -> list[dict]:
        """Every trace in the store, via ``mirrorscale history --json``."""
        extra = {"MIRRORSCALE_DATABASE_URL": store_url} if store_url else None
        out = self.run("mirrorscale", "history", "--json", "--limit", "500", extra_env=extra).stdout
        return json.loads(out)["traces"]


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[AirflowEnv]:
    """A migrated Airflow home shared by the whole session."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "mirrorscale.toml").write_text(POLICY_TOML)
    store_url = f"sqlite:///{home / 'mirrorscale.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MIRRORSCALE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "MIRRORSCALE_DATABASE_URL": store_url,
        "MIRRORSCALE_HOME": str(home / "mirrorscale"),
        "MIRRORSCALE_POLICY_FILE": str(home / "mirrorscale.toml"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONWARNINGS": "ignore",
    })
    af = AirflowEnv(home=home, env=env, store_url=store_url)
    _migrated_metadata_db(af, request.config.cache)
    yield af


def _migrated_metadata_db(af: AirflowEnv, cache: pytest.Cache) -> None:
    """Put a migrated ``airflow.db`` into the home: a copy of a cached pristine one, else migrate.

    ``airflow db migrate`` takes ~20 s; its result only depends on the Airflow
    version, so a pristine copy is kept in pytest's cache (``.pytest_cache``).
    """
    import airflow

    template = cache.mkdir("mirrorscale-airflow-db") / f"airflow-{airflow.__version__}.db"
    target = af.home / "airflow.db"
    if template.exists():
        shutil.copyfile(template, target)
        return
    af.run("airflow", "db", "migrate", timeout=300)
    tmp = template.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(target, tmp)
    tmp.replace(template)


PG_ADMIN = os.environ.get("MIRRORSCALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for Airflow's metadata (its URL), dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"ms_airflow_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield make_url(PG_ADMIN).set(database=name, drivername="postgresql+psycopg").render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
