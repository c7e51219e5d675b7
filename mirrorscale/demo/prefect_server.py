"""A temporary local Prefect API server for the demo and the Prefect benchmarks.

Prefect's own *ephemeral* mode starts an API server inside every process that
needs one: fine for a thread pool, but every process-pool worker would start a
server of its own, each with its own concurrency limits, so memory admission would
not be shared. :func:`start_api_server` starts one server (uvicorn, SQLite) in a
child process and points ``PREFECT_API_URL`` at it, so the flow process and its
workers all talk to the same API. Prefect is not imported here (only run).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["start_api_server", "stop_api_server"]

STARTUP_TIMEOUT = 180.0
"""Seconds to wait for the server's health check (it takes 10-20 s on a busy 2-core machine)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api_server(workdir: Path, *, timeout: float = STARTUP_TIMEOUT) -> subprocess.Popen[bytes]:
    """Start a Prefect API server whose home and database live in ``workdir``; wait until it answers.

    Sets ``PREFECT_API_URL`` and ``PREFECT_HOME`` in this process's environment (child
    processes inherit them). Raises ``RuntimeError`` when the server exits or does not
    answer within ``timeout`` seconds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(workdir / "prefect-home"),
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{workdir / 'prefect.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"the Prefect API server exited (code {server.returncode})") from None
            time.sleep(0.5)
    else:
        stop_api_server(server)
        raise RuntimeError(f"the Prefect API server did not answer within {timeout:g} s")
    os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=env["PREFECT_HOME"])
    return server


def stop_api_server(server: subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start_api_server` (terminate, then kill after 30 s)."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)
