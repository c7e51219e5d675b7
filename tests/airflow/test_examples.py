"""Every example DAG runs under ``airflow dags test`` and leaves one trace per task that ran."""

from __future__ import annotations

import pytest

EXPECTED = {
    "ms_etl_daily": {"extract", "transform", "load"},
    "ms_branch_heavy": {"choose", "incremental", "publish"},
    "ms_fanout_memory": {"plan", "crunch", "summarize"},
    "ms_mirrored_downstream": {"produce", "prepare", "crunch"},
}


def _of(traces: list[dict], dag_id: str) -> list[dict]:
    return [t for t in traces if t["pipeline_id"] == dag_id]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_example_runs_and_is_recorded(airflow_env, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    proc = airflow_env.run("airflow", "dags", "test", dag_id)
    assert "mirrorscale could not" not in proc.stdout + proc.stderr
    traces = _of(airflow_env.traces(), dag_id)
    assert {t["task_id"] for t in traces} == EXPECTED[dag_id]
    for t in traces:
        assert t["engine"] == "airflow" and t["source"] == "airflow-listener"
        assert t["outcome"] == "success"
        assert t["peak_rss_bytes"] > 50 << 20  # the whole task process, not just the callable
        assert t["wall_seconds"] is not None and t["cpu_seconds"] is not None
        assert 0 <= t["features"]["hour"] < 24 and 0 <= t["features"]["weekday"] < 7
        assert t["features"]["in_process"] is True  # marked as an `airflow dags test` run
    by_task = {t["task_id"]: t for t in traces}
    if dag_id == "ms_etl_daily":
        assert by_task["transform"]["features"]["xcom_bytes"] > 10_000  # extract's rows, pulled
        assert by_task["transform"]["input_size_bytes"] == by_task["transform"]["features"]["args_bytes"]
        assert by_task["extract"]["features"]["param.base_rows"] == 2000  # named by the policy
    if dag_id == "ms_branch_heavy":
        assert by_task["choose"]["branch"] == "incremental"
    if dag_id == "ms_fanout_memory":
        crunch = [t for t in traces if t["task_id"] == "crunch"]
        assert sorted(t["features"]["map_index"] for t in crunch) == [0, 1, 2]
        assert sorted(t["features"]["param.mb"] for t in crunch) == [5, 8, 16]
        assert all(t["run_id"].endswith(f"#{t['features']['map_index']}") for t in crunch)
        assert by_task["summarize"]["features"]["xcom_bytes"] > 0


def test_branch_records_the_heavy_side(airflow_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = f"sqlite:///{tmp_path / 'branch.sqlite'}"
    airflow_env.run("airflow", "dags", "test", "ms_branch_heavy", "-c", '{"force_full": true}',
                    extra_env={"MIRRORSCALE_DATABASE_URL": store})
    traces = _of(airflow_env.traces(store), "ms_branch_heavy")
    by_task = {t["task_id"]: t for t in traces}
    assert set(by_task) == {"choose", "full_rebuild", "publish"}
    assert by_task["choose"]["branch"] == "full_rebuild"
    heavy = by_task["full_rebuild"]
    assert heavy["peak_rss_bytes"] - heavy["features"]["baseline_rss_bytes"] >= 24 << 20  # 32 MiB block
