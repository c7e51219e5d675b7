"""The engine-neutral web app (FastAPI): per-task history, forecasts, allocations and mirrors.

``create_app`` builds it; the Airflow plugin mounts it on the api-server behind
Airflow's own authentication, ``mirrorscale ui`` (later) serves it alone.
FastAPI is needed only here: importing :mod:`mirrorscale` never imports it.
"""

from __future__ import annotations

from mirrorscale.web.app import create_app

__all__ = ["create_app"]
