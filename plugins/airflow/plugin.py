"""The Airflow plugin object: ``MirrorscalePlugin`` (entry point ``airflow.plugins``).

``pip install mirrorscale[airflow]`` registers it; Airflow loads it in every
component. In the task process its listener records each task run (see
:mod:`mirrorscale.plugins.airflow.listener`); on the api-server it mounts the
mirrorscale web app (when :mod:`mirrorscale.web` is installed) with links from
the DAG and task-instance pages.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from mirrorscale.plugins.airflow import listener

__all__ = ["MirrorscalePlugin", "PLUGIN_NAME", "URL_PREFIX"]

log = logging.getLogger("mirrorscale.airflow")

PLUGIN_NAME = "mirrorscale"
URL_PREFIX = "/mirrorscale"
"""Where the web app is mounted on the api-server (must not start with /api/v2, /ui, /auth, ...)."""


def _fastapi_apps() -> list[dict[str, Any]]:
    """The web app for the api-server, or nothing when it cannot be built."""
    try:
        from mirrorscale.plugins.airflow.web import create_airflow_app
    except ImportError:
        return []
    try:
        return [{"app": create_airflow_app(), "url_prefix": URL_PREFIX, "name": "mirrorscale"}]
    except Exception as exc:  # noqa: BLE001 - a broken UI must not break Airflow
        log.warning("mirrorscale web app not mounted: %s: %s", type(exc).__name__, exc)
        return []


def _external_views() -> list[dict[str, Any]]:
    """Links to the web app from Airflow's navigation, DAG, DAG-run and task-instance pages."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is None:
        return []
    pipeline = f"{URL_PREFIX}/pipelines/{{DAG_ID}}"
    run = "?run_id={RUN_ID}"  # the page highlights that run's rows
    return [
        {"name": "mirrorscale", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
         "url_route": "mirrorscale"},
        {"name": "mirrorscale", "href": pipeline, "destination": "dag", "url_route": "mirrorscale_dag"},
        {"name": "mirrorscale", "href": pipeline + run, "destination": "dag_run", "url_route": "mirrorscale_dag_run"},
        {"name": "mirrorscale", "href": f"{pipeline}/tasks/{{TASK_ID}}{run}", "destination": "task_instance",
         "url_route": "mirrorscale_task"},
    ]


class _Lazy:
    """A class attribute computed on first access (keeps the web app out of task processes)."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._value: Any = None

    def __get__(self, instance: Any, owner: Any) -> Any:
        if self._value is None:
            self._value = self._build()
        return self._value


class MirrorscalePlugin(AirflowPlugin):
    """Records every task run; shows forecasts and history on the api-server."""

    name = PLUGIN_NAME
    listeners = [listener]
    fastapi_apps = _Lazy(_fastapi_apps)
    external_views = _Lazy(_external_views)
