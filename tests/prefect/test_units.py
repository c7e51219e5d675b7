"""Parts of the Prefect plugin that need no Prefect API: features and policies."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from mirrorscale.plugins.prefect.features import task_features
from mirrorscale.plugins.prefect.measure import outcome_of
from mirrorscale.plugins.prefect.policy import code_policy, mirrorscale_policy, resolve_policy
from mirrorscale.policy import PolicyError, PolicySet


def test_features_name_policy_params_and_time() -> None:
    started = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
    parameters = {"n_rows": 5000, "rows": [b"ab", b"cd", b"ef"], "blob": np.zeros(100)}
    features, total = task_features(parameters, ["n_rows", "rows", "nope"], started)
    assert (features["param.n_rows"], features["param.rows"]) == (5000, 3)
    assert "param.nope" not in features
    assert (features["arg_bytes.n_rows"], features["arg_bytes.rows"], features["arg_bytes.blob"]) == (0, 6, 800)
    assert total == features["args_bytes"] == 806
    local = started.astimezone()
    assert (features["hour"], features["weekday"]) == (local.hour, local.weekday())


def test_outcomes() -> None:
    assert [outcome_of(e) for e in (None, ValueError(), MemoryError(), TimeoutError())] == [
        "success", "failed", "oom_killed", "timed_out"]


def test_decorator_sets_a_layer_below_file_patterns() -> None:
    from prefect import task

    @mirrorscale_policy(features=["n"], mode="recommend", memory={"max_allowed": "1GiB"})
    @task
    def work(n: int) -> int:
        return n

    assert code_policy(work).features == ("n",)
    assert code_policy(work.with_options(name="other")) is code_policy(work)  # travels with the function
    files = PolicySet.from_mapping({"headroom": 0.3, "mode": "observe",
                                    "tasks": {"etl.work": {"mode": "enforce"}}}, environ={})
    resolved = resolve_policy(files, "etl", "work", work)
    assert (resolved.mode, resolved.features, resolved.headroom) == ("enforce", ("n",), 0.3)
    assert resolved.memory.max_allowed == 1024**3
    elsewhere = resolve_policy(files, "other_flow", "work", work)
    assert elsewhere.mode == "recommend"  # the decorator beats the file's top-level keys
    kill = PolicySet.from_mapping({"tasks": {"etl.work": {"mode": "enforce"}}}, environ={"MIRRORSCALE_MODE": "observe"})
    assert resolve_policy(kill, "etl", "work", work).mode == "observe"


def test_decorator_rejects_bad_fields() -> None:
    with pytest.raises(PolicyError, match="unknown field"):
        mirrorscale_policy(moed="enforce")
