"""A real ``airflow api-server`` for tests, and plain-HTTP helpers to talk to it.

:func:`serving` starts the api-server on a free port with the simple auth
manager (the users given), waits until it answers its health check and stops
its process group afterwards. Used by ``test_web.py`` and ``test_browser.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_url() -> str:
    """``http://127.0.0.1:<port>`` on a port just closed again: connections to it are refused."""
    return f"http://127.0.0.1:{free_port()}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """``(status, body)`` of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """``(status, body)`` of a JSON POST; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def token(base: str, user: str, password: str) -> str:
    """A JWT for ``user`` from the simple auth manager's ``POST /auth/token``."""
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def passwords(home: Path) -> dict[str, str]:
    """The simple auth manager's passwords (the file it generated in ``home``)."""
    return json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())


@contextmanager
def serving(env: dict[str, str], home: Path, *, users: str = "admin:admin,viewer:viewer",
            timeout: float = 150) -> Iterator[str]:
    """Run ``airflow api-server`` (one worker) with ``users`` (``name:role,...``); yields its base URL."""
    port = free_port()
    env = {**env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log_path = home / f"api-server-{port}.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(BIN / "airflow"), "api-server", "--port", str(port), "--workers", "1"],
                                env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_healthy(base, proc, log_path, timeout)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _wait_healthy(base: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"api-server exited {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if get(f"{base}/api/v2/monitor/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"api-server did not answer within {timeout:g} s: {log_path.read_text()[-3000:]}")
