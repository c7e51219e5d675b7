"""``mirrorscale airflow setup`` and ``doctor`` on a real Airflow home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mirrorscale.plugins.airflow.setup import MARKER, install_local_settings


def _checks(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_setup_makes_the_policy_hook_live(airflow_env) -> None:  # type: ignore[no-untyped-def]
    before = airflow_env.run("mirrorscale", "airflow", "doctor", "--json", check=False)
    checks = _checks(before)
    assert before.returncode == 1
    assert checks["policy hook live"]["status"] == "fail"
    assert "no-op" in checks["policy hook live"]["detail"]
    for name in ("airflow installed", "plugin registered", "task listener", "store reachable"):
        assert checks[name]["status"] == "ok", checks[name]

    first = json.loads(airflow_env.run("mirrorscale", "airflow", "setup", "--json").stdout)
    assert first["action"] == "created"
    written = Path(first["path"])
    assert written == airflow_env.home / "config" / "airflow_local_settings.py"
    assert MARKER in written.read_text()
    again = json.loads(airflow_env.run("mirrorscale", "airflow", "setup", "--json").stdout)
    assert again["action"] == "exists"

    after = airflow_env.run("mirrorscale", "airflow", "doctor", "--json")
    checks = _checks(after)
    assert all(c["status"] in ("ok", "warn") for c in checks.values()), checks
    assert str(written) in checks["policy hook live"]["detail"]


def test_setup_leaves_a_users_local_settings_alone(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delitem(sys.modules, "airflow_local_settings", raising=False)
    own = tmp_path / "config" / "airflow_local_settings.py"
    own.parent.mkdir()
    own.write_text("POLICY = 1\n")
    result = install_local_settings(tmp_path)
    assert result.action == "foreign" and result.path == own
    assert own.read_text() == "POLICY = 1\n"
    dry = install_local_settings(tmp_path / "elsewhere", dry_run=True)
    assert dry.action == "would-create" and not dry.path.exists()


def test_cli_works_without_airflow(tmp_path: Path) -> None:
    """The CLI (and `airflow doctor`) must run where Airflow cannot be imported."""
    code = (
        "import sys; sys.modules['airflow'] = None\n"
        "sys.argv = ['mirrorscale', 'airflow', 'doctor', '--json']\n"
        "from mirrorscale.cli import main\nmain()\n"
    )
    env = {"MIRRORSCALE_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    checks = _checks(proc)
    assert checks["airflow installed"]["status"] == "fail"
    assert checks["store reachable"]["status"] == "ok"
    setup = subprocess.run([sys.executable, "-c", code.replace("'doctor', '--json'", "'setup', '--dry-run', "
                            f"'--airflow-home', '{tmp_path}'")], capture_output=True, text=True, env=env, timeout=120)
    assert setup.returncode == 0, setup.stderr
    assert "would-create" in setup.stdout
