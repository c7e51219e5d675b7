"""The package's shape: the core imports without any engine, and the mapped subpackages resolve."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "mirrorscale", "mirrorscale.config", "mirrorscale.nextflow", "mirrorscale.trace_import",
    "mirrorscale.monitor", "mirrorscale.policy", "mirrorscale.store.history", "mirrorscale.store.schema",
    "mirrorscale.cli", "mirrorscale.predictors", "mirrorscale.migrations",
]


def test_core_imports_without_engines_or_heavy_libraries() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "import mirrorscale.cli as c; c._load_commands()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('airflow', 'prefect', 'sklearn', 'alembic', 'pandas'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == []


def test_mapped_subpackages_live_inside_mirrorscale() -> None:
    import mirrorscale.migrations
    import mirrorscale.plugins
    import mirrorscale.predictors

    for module in (mirrorscale.plugins, mirrorscale.predictors, mirrorscale.migrations):
        assert module.__file__ is not None and module.__name__.startswith("mirrorscale.")
    code = "import importlib.util as u; print(u.find_spec('plugins') is None and u.find_spec('predictors') is None)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/").stdout
    assert out.strip() == "True"
