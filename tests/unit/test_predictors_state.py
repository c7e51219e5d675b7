"""A fitted mirrorscale sizer persists as plain JSON and restores without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mirrorscale.predictors.selector import STATE_VERSION, SelectorSizer
from mirrorscale.replay.records import ReplayTask

GB = 1e9


def _runs(n, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(1e8, 1e10, n)
    return [ReplayTask("w", "t", i, usage=float(0.3 * s**0.95 * rng.lognormal(0, 0.05)), runtime_ms=60_000.0,
                       request=64 * GB, input_size=float(s) if i % 7 else None) for i, s in enumerate(sizes)]


def test_restored_sizer_allocates_exactly_like_the_original():
    runs = _runs(120)
    original = SelectorSizer()
    for run in runs[:80]:
        original.observe(run)
    original.allocate(runs[80])
    state = json.loads(json.dumps(original.get_state(), allow_nan=False))  # strictly JSON, no NaN/inf
    assert state["version"] == STATE_VERSION
    restored = SelectorSizer.from_state(state)
    for run in runs[80:]:  # same allocations, retries and reasons for every next run
        assert restored.allocate(run) == original.allocate(run)
        assert restored.reason == original.reason
        assert restored.retry(run, 0.5 * run.usage, 1) == original.retry(run, 0.5 * run.usage, 1)
        original.observe(run)
        restored.observe(run)
    fresh = SelectorSizer(alpha=0.2)
    fresh.set_state(original.get_state())
    assert fresh.alpha == original.alpha and fresh.allocate(runs[0]) == original.allocate(runs[0])


def test_cold_sizer_round_trips():
    state = json.loads(json.dumps(SelectorSizer().get_state(), allow_nan=False))
    assert SelectorSizer.from_state(state).allocate(_runs(1)[0]) == 64 * GB


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.update(version=STATE_VERSION + 1), "version"),
    (lambda s: s.pop("history"), "'history'"),
    (lambda s: s["history"].update(usage=s["history"]["usage"][:-1]), "same length"),
    (lambda s: s["history"]["usage"].__setitem__(0, "big"), "'usage'"),
    (lambda s: s["experts"].pop(), "experts"),
    (lambda s: s["params"].update(colour="blue"), "params"),
    (lambda s: s.update(chosen="psychic"), "chosen"),
    (lambda s: s["experts"][0]["errors"].pop("errors"), "errors"),
])
def test_wrong_version_or_malformed_state_is_a_clear_value_error(mutate, message):
    sizer = SelectorSizer()
    for run in _runs(20):
        sizer.observe(run)
    state = json.loads(json.dumps(sizer.get_state()))
    mutate(state)
    with pytest.raises(ValueError, match=message):
        SelectorSizer.from_state(state)
    with pytest.raises(ValueError):
        SelectorSizer().set_state(state)
    with pytest.raises(ValueError, match="dict"):
        SelectorSizer.from_state([1, 2])
