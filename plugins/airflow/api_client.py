"""A small HTTP client for the plugin's own routes on Airflow's api-server (used by task processes).

Workers reach the api-server at ``MIRRORSCALE_AIRFLOW_API_URL``, else Airflow's
``[api] base_url`` (else ``http://localhost:8080``). Credentials:
``MIRRORSCALE_AIRFLOW_API_TOKEN`` (a JWT), or ``MIRRORSCALE_AIRFLOW_API_USER``
and ``MIRRORSCALE_AIRFLOW_API_PASSWORD``, exchanged once per process at
``/auth/token``. Only the standard library is used: no import cost in the task.

Callers: :mod:`mirrorscale.plugins.airflow.downstream` (mirror claims and
allocations of downstream tasks) and :mod:`mirrorscale.plugins.airflow.listener`
(relaying a trace when the store cannot be reached).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

__all__ = ["URL_ENV", "TOKEN_ENV", "USER_ENV", "PASSWORD_ENV", "base_url", "configured", "post_task_route",
           "task_route_path", "token"]

URL_ENV = "MIRRORSCALE_AIRFLOW_API_URL"
TOKEN_ENV = "MIRRORSCALE_AIRFLOW_API_TOKEN"
USER_ENV = "MIRRORSCALE_AIRFLOW_API_USER"
PASSWORD_ENV = "MIRRORSCALE_AIRFLOW_API_PASSWORD"

_TOKENS: dict[str, str] = {}


def _env(name: str) -> str:
    return (os.environ.get(name) or "").strip()


def configured() -> bool:
    """True when this process was told how to reach the api-server (its URL, a token or a user)."""
    return any(_env(name) for name in (URL_ENV, TOKEN_ENV, USER_ENV))


def base_url() -> str:
    """The api-server's base URL, without a trailing slash."""
    url = _env(URL_ENV)
    if not url:
        from airflow.configuration import conf

        url = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return url.rstrip("/")


def token(base: str, *, timeout: float = 10) -> str | None:
    """A JWT for ``base``: the configured token, else one exchanged for user/password (cached); None without."""
    configured_token = _env(TOKEN_ENV)
    if configured_token:
        return configured_token
    user = os.environ.get(USER_ENV)
    if not user:
        return None
    if base not in _TOKENS:
        body = json.dumps({"username": user, "password": os.environ.get(PASSWORD_ENV, "")})
        request = urllib.request.Request(f"{base}/auth/token", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _TOKENS[base] = json.loads(response.read())["access_token"]
    return _TOKENS[base]


def task_route_path(dag_id: str, run_id: str, task_id: str, route: str) -> str:
    """The path of one of the plugin's task-instance routes (ids URL-quoted), under its ``URL_PREFIX``."""
    from mirrorscale.plugins.airflow.plugin import URL_PREFIX

    return (f"{URL_PREFIX}/airflow/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/"
            f"{quote(task_id, safe='')}/{route}")


def post_task_route(dag_id: str, run_id: str, task_id: str, route: str, body: dict[str, Any], *,
                    timeout: float = 20) -> dict[str, Any]:
    """POST ``body`` to one of the plugin's task-instance routes; the JSON answer.

    Raises ``OSError`` (unreachable, timed out) or ``RuntimeError`` naming the
    path, the HTTP status and the start of the answer's detail.
    """
    base = base_url()
    headers = {"Content-Type": "application/json"}
    jwt = token(base, timeout=timeout)
    if jwt:
        headers["Authorization"] = f"Bearer {jwt}"
    path = task_route_path(dag_id, run_id, task_id, route)
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise RuntimeError(f"{path} answered {exc.code}: {detail}") from None
