"""The plugin API down (refused, 500, 401): the upstream's sizing step logs one warning and never raises."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow_api import refused_url

from mirrorscale.plugins.airflow import downstream
from mirrorscale.policy import load_policies

POLICY = '[tasks."ms_api_down.crunch"]\nmode = "enforce"\n'


def _server(status: int) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"detail": "boom"}')

        def log_message(self, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    (tmp_path / "policy.toml").write_text(POLICY)
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(tmp_path / "policy.toml"))
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_API_TOKEN", "a-token")
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_MIRROR_TIMEOUT", "30")
    down = SimpleNamespace(task_id="crunch", op_args=["x" * 1000], op_kwargs={}, python_callable=None)
    task = SimpleNamespace(task_id="produce", downstream_list=[down])
    yield SimpleNamespace(dag_id="ms_api_down", task_id="produce", run_id="manual__1", task=task,
                          xcom_pull=lambda **_: None)


@pytest.mark.parametrize("kind", ["refused", "500", "401"])
def test_sizing_step_warns_once_when_the_api_is_down(upstream: SimpleNamespace, kind: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = None
    if kind == "refused":
        url = refused_url()
    else:
        server, url = _server(int(kind))
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_API_URL", url)
    try:
        with caplog.at_level(logging.WARNING, logger="mirrorscale.airflow"):
            answers = downstream.mirror_downstream(upstream, "result", load_policies())
    finally:
        if server is not None:
            server.shutdown()
    assert answers == []  # nothing was applied: crunch keeps its own settings
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "ms_api_down.crunch" in warnings[0] and "keeps its own settings" in warnings[0]
    if kind != "refused":
        assert f"answered {kind}" in warnings[0]
