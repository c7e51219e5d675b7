"""The mirrorscale web app on Airflow's api-server, behind Airflow's own authentication.

Airflow mounts a plugin's FastAPI app as is, so anonymous requests would reach
it; every route therefore depends on :func:`airflow_access`: the user must be
logged in (JWT from ``Authorization: Bearer`` or the UI's ``_token`` cookie),
may see plugin views (``AccessView.PLUGINS``) and, on pages of one pipeline,
may read that DAG (``requires_access_dag("GET")`` with the page's
``pipeline_id``). No token → 401, not allowed → 403.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.applications import FastAPI

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view

__all__ = ["airflow_access", "create_airflow_app"]


def airflow_access(request: Request, user: GetUserDep) -> None:
    """Airflow's checks for one request to the mirrorscale app (raises 401/403)."""
    requires_access_view(AccessView.PLUGINS)(request, user)
    pipeline_id = request.path_params.get("pipeline_id")
    if pipeline_id:
        requires_access_dag("GET", param_dag_id=pipeline_id)(request, user)


def create_airflow_app() -> FastAPI:
    """The engine-neutral app restricted to Airflow tasks and guarded by :func:`airflow_access`."""
    from mirrorscale.web import create_app

    return create_app(dependencies=[Depends(airflow_access)], engine="airflow", title="mirrorscale for Airflow")
