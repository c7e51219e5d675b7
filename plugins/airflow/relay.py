"""Relay a trace to the plugin's endpoint on the api-server when the worker cannot write the store.

Workers often cannot reach the history store (another network, a read-only
replica, no credentials); the api-server can. When the listener's direct write
fails, it posts the same trace to
``POST /mirrorscale/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/trace``
(:mod:`mirrorscale.plugins.airflow.trace_api`) with the worker's API
credentials (:mod:`mirrorscale.plugins.airflow.api_client`). Posting twice is
harmless: the store keeps one trace per (task, run, try).

``MIRRORSCALE_AIRFLOW_RELAY``: ``auto`` (default: relay when the worker was
told how to reach the api-server, i.e. ``MIRRORSCALE_AIRFLOW_API_URL``,
``_TOKEN`` or ``_USER`` is set), ``1`` (always, else Airflow's ``[api]
base_url``), ``0`` (never). ``MIRRORSCALE_AIRFLOW_RELAY_TIMEOUT`` bounds one
relay in seconds (10).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

__all__ = ["RELAY_ENV", "RELAY_TIMEOUT_ENV", "RelayFailed", "enabled", "payload", "relay_trace", "timeout"]

RELAY_ENV = "MIRRORSCALE_AIRFLOW_RELAY"
RELAY_TIMEOUT_ENV = "MIRRORSCALE_AIRFLOW_RELAY_TIMEOUT"


class RelayFailed(RuntimeError):
    """Neither the store nor the api-server took the trace; names both failures."""

    def __init__(self, store_error: BaseException, relay_error: BaseException) -> None:
        super().__init__(f"the store failed ({_one_line(store_error)}) and relaying to the api-server failed too "
                         f"({_one_line(relay_error)})")
        self.store_error = store_error
        self.relay_error = relay_error


def _one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (driver errors span several), at most ``limit`` characters."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def enabled() -> bool:
    """Whether a trace the store refused goes to the api-server (see the module docstring)."""
    from mirrorscale.plugins.airflow.api_client import configured

    wanted = (os.environ.get(RELAY_ENV) or "auto").strip().lower()
    if wanted in ("0", "false", "no", "off"):
        return False
    return wanted != "auto" or configured()


def timeout() -> float:
    """Seconds one relay may take (``MIRRORSCALE_AIRFLOW_RELAY_TIMEOUT``, 10)."""
    return float(os.environ.get(RELAY_TIMEOUT_ENV, "10") or 10)


def payload(row: dict[str, Any], map_index: int) -> dict[str, Any]:
    """The endpoint's JSON body for one trace row (``record_trace`` keywords without the ids); features
    the endpoint would refuse (:func:`~mirrorscale.plugins.airflow.trace_api.relayable_features`) are
    left out and named in ``features["relay_dropped"]``."""
    from mirrorscale.plugins.airflow.trace_api import relayable_features

    skip = {"engine", "pipeline_id", "task_id", "run_id", "source"}
    body: dict[str, Any] = {k: _json(v) for k, v in row.items() if k not in skip and v is not None}
    if isinstance(body.get("features"), dict):
        body["features"], dropped = relayable_features(body["features"])
        if dropped:  # the trace still goes; what the endpoint cannot take is named, not lost silently
            body["features"]["relay_dropped"] = ",".join(dropped)[:500]
    body["map_index"] = map_index
    return body


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def relay_trace(dag_id: str, dag_run_id: str, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST one trace to the api-server; its answer ``{"stored": bool, ...}`` (raises on any failure)."""
    from mirrorscale.plugins.airflow.api_client import post_task_route

    return post_task_route(dag_id, dag_run_id, task_id, "trace", body, timeout=timeout())
