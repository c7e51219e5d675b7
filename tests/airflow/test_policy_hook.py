"""The cluster policy hook in-process, with stand-in task instances: enforce/observe, mapped items, failures,
the KubernetesExecutor ``pod_override`` (real ``kubernetes.client`` types) and memory pools on a real
Airflow metadata DB (subprocess)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrorscale.plugins.airflow import policy as hook
from mirrorscale.store.history import HistoryStore

MIB = 1 << 20
RUN = SimpleNamespace(conf={})
POLICY = """
[tasks."unit_dag.heavy"]
mode = "enforce"
pool = "ms_unit_pool"
pool_slot_memory = "128MiB"
headroom = 0.1
[tasks."unit_dag.shown"]
mode = "recommend"
[tasks."unit_dag.fan"]
mode = "enforce"
pool_slot_memory = "64MiB"
"""


def _ti(task_id: str, *, map_index: int = -1, executor: str | None = None, config: dict | None = None,
        mapped: bool = False, expand: dict | None = None) -> SimpleNamespace:
    task = SimpleNamespace(executor_config=config or {}, executor=executor, is_mapped=mapped,
                           expand_input=SimpleNamespace(value=expand) if expand is not None else None)
    return SimpleNamespace(dag_id="unit_dag", task_id=task_id, run_id="manual__7", map_index=map_index,
                           try_number=0, task=task, pool="default_pool", pool_slots=1, priority_weight=1,
                           queue="default", executor=executor, executor_config=task.executor_config)


def _seed(store: HistoryStore, task_id: str, peaks_mib: list[int], sizes: list[int] | None = None) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i, peak in enumerate(peaks_mib):
        store.record_trace(engine="airflow", pipeline_id="unit_dag", task_id=task_id, run_id=f"seed{i}",
                           started_at=t0 + timedelta(hours=i), peak_rss_bytes=peak * MIB, outcome="success",
                           cpu_seconds=2.0, wall_seconds=4.0, input_size_bytes=sizes[i] if sizes else None,
                           source="seed")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HistoryStore:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    (tmp_path / "mirrorscale.toml").write_text(POLICY)
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(tmp_path / "mirrorscale.toml"))
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_CAPACITY", "2GiB")
    for var in ("MIRRORSCALE_MODE", "MIRRORSCALE_AIRFLOW_KUBERNETES", "MIRRORSCALE_AIRFLOW_ALLOCATE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hook, "ensure_pool", lambda *a, **k: None)  # no Airflow DB in-process
    hook.reset()
    yield HistoryStore.open(url)
    hook.reset()


def test_enforce_task_with_history_is_sized(store: HistoryStore) -> None:
    _seed(store, "heavy", [400, 420, 410, 430, 415])
    ti = _ti("heavy", executor="LocalExecutor")
    shared = ti.task.executor_config
    hook.task_instance_mutation_hook(ti, RUN)
    hook.task_instance_mutation_hook(ti, RUN)  # Airflow calls it twice per instance: one decision
    ours = ti.executor_config["mirrorscale"]
    assert 430 * MIB < ours["memory_bytes"] < 800 * MIB
    assert ti.pool == "ms_unit_pool"
    assert ti.pool_slots == -(-ours["memory_bytes"] // (128 * MIB)) and ti.pool_slots >= 4
    assert ti.priority_weight >= 2 and ours["allocation_id"]
    assert "pod_override" not in ti.executor_config and shared == {}  # the task's own dict is untouched
    stored = store.latest_allocation(("airflow", "unit_dag", "heavy"))
    assert stored.applied and stored.mode == "enforce" and stored.id == ours["allocation_id"]
    assert stored.run_id == "manual__7"


def test_observe_and_recommend_leave_the_task_instance_alone(store: HistoryStore) -> None:
    for task_id in ("plain", "shown"):
        _seed(store, task_id, [300, 310, 320])
        ti = _ti(task_id)
        hook.task_instance_mutation_hook(ti, RUN)
        assert (ti.pool, ti.pool_slots, ti.priority_weight, ti.executor_config) == ("default_pool", 1, 1, {})
    assert store.latest_allocation(("airflow", "unit_dag", "plain")) is None
    shown = store.latest_allocation(("airflow", "unit_dag", "shown"))
    assert shown.mode == "recommend" and not shown.applied  # computed and stored, not applied


def test_hand_set_allocations_and_run_conf(store: HistoryStore) -> None:
    _seed(store, "heavy", [400, 420, 410])
    pinned = _ti("heavy", config={"mirrorscale": {"memory_bytes": 64 * MIB}})
    hook.task_instance_mutation_hook(pinned, RUN)
    assert pinned.pool_slots == 1 and pinned.executor_config["mirrorscale"]["memory_bytes"] == 64 * MIB
    off = _ti("heavy")
    hook.task_instance_mutation_hook(off, SimpleNamespace(conf={"mirrorscale": {"mode": "off"}}))
    assert off.executor_config == {}
    fixed = _ti("heavy")
    fixed.run_id = "manual__8"
    hook.task_instance_mutation_hook(fixed, SimpleNamespace(conf={"mirrorscale": {"pin": {
        "memory_bytes": "1GiB", "pool_slots": 8}}}))
    assert fixed.pool_slots == 8 and fixed.executor_config["mirrorscale"]["memory_bytes"] == 1 << 30
    assert store.latest_allocation(("airflow", "unit_dag", "heavy")).source == "pinned"


def test_mapped_instances_are_sized_from_their_own_item(store: HistoryStore) -> None:
    # peak ~ 100 MiB + 1000 x input: the allocator's history model follows the input size
    sizes = [10_000, 50_000, 100_000, 200_000, 20_000, 150_000, 80_000, 30_000]
    _seed(store, "fan", [100 + s * 1000 // MIB for s in sizes], sizes)
    items = ["x" * 20_000, "x" * 190_000]
    placeholder = _ti("fan", mapped=True, expand={"part": items})
    hook.task_instance_mutation_hook(placeholder, RUN)
    assert placeholder.executor_config == {}  # the unexpanded placeholder is not sized
    small, big = (_ti("fan", map_index=i, mapped=True, expand={"part": items}) for i in (0, 1))
    for ti in (small, big):
        hook.task_instance_mutation_hook(ti, RUN)
    assert small.pool_slots < big.pool_slots
    small_bytes, big_bytes = (t.executor_config["mirrorscale"]["memory_bytes"] for t in (small, big))
    assert big_bytes > 1.5 * small_bytes and big_bytes > 281 * MIB  # the big item's true peak


def test_broken_store_leaves_the_task_instance_untouched_with_one_warning(
        store: HistoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", f"sqlite:///{blocker / 'store.sqlite'}")
    hook.reset()
    ti = _ti("heavy")
    with caplog.at_level(logging.WARNING, logger="mirrorscale.airflow"):
        hook.task_instance_mutation_hook(ti, RUN)
    assert (ti.pool, ti.pool_slots, ti.priority_weight, ti.executor_config) == ("default_pool", 1, 1, {})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unit_dag.heavy" in warnings[0].getMessage()


def test_kubernetes_pod_override_uses_the_client_types(store: HistoryStore) -> None:
    from kubernetes.client import ApiClient
    from kubernetes.client import models as k8s

    _seed(store, "heavy", [400, 420, 410, 430, 415])
    ti = _ti("heavy", executor="KubernetesExecutor")
    hook.task_instance_mutation_hook(ti, RUN)
    pod = ti.executor_config["pod_override"]
    assert isinstance(pod, k8s.V1Pod)
    container = pod.spec.containers[0]
    assert isinstance(container, k8s.V1Container) and container.name == "base"
    assert isinstance(container.resources, k8s.V1ResourceRequirements)
    memory = ti.executor_config["mirrorscale"]["memory_bytes"]
    mib = -(-memory // MIB)
    assert container.resources.requests["memory"] == container.resources.limits["memory"] == f"{mib}Mi"
    assert container.resources.requests["cpu"].endswith("m") and "cpu" not in container.resources.limits
    wire = ApiClient().sanitize_for_serialization(pod)  # what the API server would receive
    assert wire["spec"]["containers"][0]["resources"]["limits"] == {"memory": f"{mib}Mi"}
    direct = hook.pod_override(3 * (1 << 30), 1.5)
    assert direct.spec.containers[0].resources.requests == {"memory": "3072Mi", "cpu": "1500m"}


POOL_SCRIPT = """
import json, os
from mirrorscale.plugins.airflow import policy as hook
from airflow.models.pool import Pool
from airflow.utils.session import create_session
out = {}
out["created"] = hook.ensure_pool("ms_unit_pool", 128 << 20)
with create_session() as s:
    out["slots_1"] = Pool.get_pool("ms_unit_pool", session=s).slots
    Pool.create_or_update_pool("ms_unit_pool", 3, "wrong size", False, session=s)
hook.reset()
os.environ["MIRRORSCALE_AIRFLOW_CAPACITY"] = "1GiB"
out["resized"] = hook.ensure_pool("ms_unit_pool", 128 << 20)
with create_session() as s:
    p = Pool.get_pool("ms_unit_pool", session=s)
    out["slots_2"], out["description"] = p.slots, p.description
print("RESULT" + json.dumps(out))
"""


def test_memory_pool_is_created_and_resized(airflow_env) -> None:  # type: ignore[no-untyped-def]
    proc = airflow_env.run("python", "-c", POOL_SCRIPT, extra_env={"MIRRORSCALE_AIRFLOW_CAPACITY": "2GiB"})
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["created"] == out["slots_1"] == 16  # 2 GiB / 128 MiB
    assert out["resized"] == out["slots_2"] == 8 and "128 MiB" in out["description"]
