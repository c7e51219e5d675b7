"""Process-pool workers share the flow's temporary Prefect API server (else admission is not shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = '''
import json, os, sys
from prefect import flow, task
from prefect.task_runners import ProcessPoolTaskRunner
from mirrorscale.plugins.prefect import PredictiveTaskRunner

@task
def api_of_worker(i: int) -> list:
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        return [os.getpid(), str(client.api_url)]

@flow(name="shared-api", task_runner=PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=2)))
def shared_api() -> dict:
    from prefect.client.orchestration import get_client
    workers = [f.result() for f in api_of_worker.map(range(4))]
    return {"flow": str(get_client().api_url), "workers": workers}

if __name__ == "__main__":
    found = shared_api()
    found["after"] = os.environ.get("PREFECT_API_URL")
    print("RESULT " + json.dumps(found))
'''


def test_process_pool_workers_use_the_flows_temporary_server(tmp_path: Path) -> None:
    script = tmp_path / "shared_api_flow.py"
    script.write_text(FLOW)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # Prefect's temporary server
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
               MIRRORSCALE_DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite'}")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=280,
                          cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    found = json.loads(lines[-1][len("RESULT "):])
    workers = {pid for pid, _ in found["workers"]}
    assert len(workers) >= 1 and os.getpid() not in workers
    assert {url for _, url in found["workers"]} == {found["flow"]}, found  # one server, the flow's
    assert found["after"] is None  # the variable is gone once the runner stopped
