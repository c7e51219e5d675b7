"""Process-pool workers on Prefect's temporary server: make them use the flow's own.

Without ``PREFECT_API_URL`` Prefect runs a temporary API server in each process
that needs one. A ``ProcessPoolTaskRunner``'s workers are new processes, so each
starts a server of its own (checked on Prefect 3.9.1: a flow with two workers
talked to three servers on three ports). Memory admission is a global
concurrency limit on the API, so workers on separate servers would each see the
whole capacity free, and their task runs would not reach the flow's server.

While a :class:`~mirrorscale.plugins.prefect.PredictiveTaskRunner` wrapping a
process pool runs, :func:`flow_api_for_workers` exports the flow's temporary
server as ``PREFECT_API_URL``, so the workers started then use it; the variable
is restored when the runner stops. With a configured API (a real server, Prefect
Cloud, the test harness) nothing changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["flow_api_for_workers"]

logger = logging.getLogger("mirrorscale.prefect")

VARIABLE = "PREFECT_API_URL"


def _uses_worker_processes(runner: Any) -> bool:
    from prefect.task_runners import ProcessPoolTaskRunner

    return isinstance(runner, ProcessPoolTaskRunner)


def _temporary_api_url() -> str | None:
    """The URL of this process's temporary API server, or None when an API is configured."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url or os.environ.get(VARIABLE):
        return None
    from prefect.client.orchestration import get_client

    return str(get_client().api_url).rstrip("/")  # in a flow run: starts or reuses the temporary server


@contextmanager
def flow_api_for_workers(inner: Any) -> Iterator[str | None]:
    """While open, worker processes of ``inner`` use this process's temporary API server; yields its URL."""
    url = None
    if _uses_worker_processes(inner):
        try:
            url = _temporary_api_url()
        except Exception as exc:  # noqa: BLE001 - the workers then start their own servers, as without us
            logger.warning("mirrorscale: could not find the flow's temporary Prefect API (%r); process-pool "
                           "workers start their own and memory admission is not shared between them", exc)
    if url is not None:
        os.environ[VARIABLE] = url
    try:
        yield url
    finally:
        if url is not None and os.environ.get(VARIABLE) == url:
            del os.environ[VARIABLE]
