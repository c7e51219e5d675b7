"""``mirrorscale airflow doctor``: is the Airflow integration installed and working?

Each check returns a :class:`Check` (``ok`` / ``warn`` / ``fail``, what was
seen, and how to fix it). Airflow is imported inside the checks, so the
store checks still run (and the Airflow ones fail clearly) in an environment
without Airflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    """The result of one check."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def _airflow() -> Check:
    try:
        import airflow
    except ImportError as exc:
        return Check("airflow installed", "fail", f"cannot import airflow: {exc}",
                     "pip install 'mirrorscale[airflow]' in Airflow's environment")
    version = getattr(airflow, "__version__", "?")
    if not str(version).startswith("3."):
        return Check("airflow installed", "fail", f"Airflow {version}", "mirrorscale needs Airflow 3.3")
    return Check("airflow installed", "ok", f"Airflow {version}")


def _plugin() -> Check:
    from airflow import plugins_manager

    from mirrorscale.plugins.airflow import listener
    from mirrorscale.plugins.airflow.plugin import PLUGIN_NAME

    plugins, errors = plugins_manager._get_plugins()
    ours = [p for p in plugins if p.name == PLUGIN_NAME]
    broken = {k: v for k, v in errors.items() if "mirrorscale" in k}
    if broken:
        return Check("plugin registered", "fail", f"import errors: {broken}",
                     "fix the error above, then restart Airflow")
    if not ours:
        return Check("plugin registered", "fail", "no plugin named 'mirrorscale' (entry point airflow.plugins)",
                     "reinstall: pip install 'mirrorscale[airflow]'")
    if listener not in ours[0].listeners:
        return Check("plugin registered", "fail", "plugin found but without its listener", "reinstall mirrorscale")
    source = ours[0].source
    dist = getattr(source, "dist", None)
    where = f"{dist}=={getattr(source, 'version', '?')} (entry point airflow.plugins)" if dist else str(source)
    return Check("plugin registered", "ok", f"plugin {PLUGIN_NAME!r} from {where}")


def _task_listener() -> Check:
    from airflow.sdk.listener import get_listener_manager

    from mirrorscale.plugins.airflow import listener

    manager = get_listener_manager()
    if not manager.pm.is_registered(listener):
        return Check("task listener", "fail", "the task SDK's listener manager does not have the recorder",
                     "check `airflow plugins` for errors")
    return Check("task listener", "ok", "recorder registered with the task SDK (runs in each task's process)")


def _policy() -> Check:
    from airflow import settings

    from mirrorscale.plugins.airflow import policy
    from mirrorscale.plugins.airflow.setup import find_local_settings

    manager = settings.get_policy_plugin_manager()
    if not manager.is_registered(policy):
        return Check("policy hook live", "fail", "cluster policy not registered (entry point airflow.policy)",
                     "reinstall: pip install 'mirrorscale[airflow]'")
    if getattr(settings.task_instance_mutation_hook, "is_noop", True):
        return Check("policy hook live", "fail",
                     "task_instance_mutation_hook is treated as a no-op: no airflow_local_settings module",
                     "run `mirrorscale airflow setup`, then restart the scheduler")
    found = find_local_settings()
    return Check("policy hook live", "ok", f"task_instance_mutation_hook active (local settings: {found})")


def _store() -> tuple[Check, Any]:
    from mirrorscale import config
    from mirrorscale.store.history import HistoryStore

    url = config.database_url()
    shown = _hide_password(url)
    try:
        store = HistoryStore.open(url, migrate=False)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        return Check("store reachable", "fail", f"{shown}: {type(exc).__name__}: {exc}",
                     "set MIRRORSCALE_DATABASE_URL for Airflow's workers and scheduler"), None
    return Check("store reachable", "ok", shown), store


def _schema(store: Any) -> Check:
    from mirrorscale.store.schema import SCHEMA_REVISION, current_revision

    if store is None:
        return Check("schema current", "fail", "store not reachable", "see above")
    found = current_revision(store.engine)
    if found == SCHEMA_REVISION:
        return Check("schema current", "ok", f"revision {found}")
    status = "warn" if found is None else "fail"  # an empty store is migrated on first write
    return Check("schema current", status, f"store at {found or 'no schema'}, code expects {SCHEMA_REVISION}",
                 "mirrorscale db upgrade")


def _policies() -> Check:
    from mirrorscale.policy import load_policies

    try:
        policies = load_policies()
    except Exception as exc:  # noqa: BLE001
        return Check("policies valid", "fail", str(exc), "mirrorscale policy check")
    return Check("policies valid", "ok", f"{len(policies.rules)} rule(s) from {policies.source or 'defaults'}")


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _guard(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001
        return Check(name, "fail", f"{type(exc).__name__}: {exc}")


def run_checks() -> list[Check]:
    """Every check, in order; Airflow checks are skipped (failed) when Airflow is missing."""
    checks = [_airflow()]
    airflow_ok = checks[0].status == "ok"
    for name, check in (("plugin registered", _plugin), ("task listener", _task_listener),
                        ("policy hook live", _policy)):
        checks.append(_guard(name, check) if airflow_ok else Check(name, "fail", "Airflow not importable"))
    try:
        store_check, store = _store()
    except Exception as exc:  # noqa: BLE001
        store_check, store = Check("store reachable", "fail", f"{type(exc).__name__}: {exc}"), None
    checks.append(store_check)
    checks.append(_guard("schema current", lambda: _schema(store)))
    checks.append(_guard("policies valid", _policies))
    if store is not None:
        store.close()
    return checks
