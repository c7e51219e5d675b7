"""Path prediction engine: learns branches from context, falls back, reports accuracy."""

from __future__ import annotations

import numpy as np

from mirrorscale.predictors.path import PathPredictor, branch_label, context_features


def test_learns_a_size_threshold():
    rng = np.random.default_rng(0)
    sizes = rng.uniform(0, 1e9, 200)
    contexts = [{"input_size": s, "mode": "full"} for s in sizes]
    branches = [branch_label(["split", "merge"]) if s > 5e8 else branch_label(["direct"]) for s in sizes]
    predictor = PathPredictor().fit(contexts, branches)
    assert predictor.uses_model_ and predictor.accuracy_ > 0.95
    assert predictor.predict([{"input_size": 9e8}, {"input_size": 1e8}]) == ["merge+split", "direct"]
    assert "decision tree" in predictor.describe()


def test_falls_back_to_most_frequent_branch():
    rng = np.random.default_rng(1)
    contexts = [{"input_size": float(s)} for s in rng.uniform(0, 1, 60)]
    branches = ["a" if i % 4 else "b" for i in range(60)]  # unrelated to context
    predictor = PathPredictor().fit(contexts, branches)
    assert not predictor.uses_model_
    assert predictor.predict([{"input_size": 0.5}]) == ["a"]
    assert predictor.baseline_accuracy_ == 0.75 and "most frequent" in predictor.describe()


def test_few_runs_and_weekday_features():
    predictor = PathPredictor().fit([{"x": 1.0}], ["only"])
    assert predictor.predict([{"x": 2.0}]) == ["only"]
    features = context_features({"when": 0, "team": "ops", "flag": True})
    assert set(features) >= {"hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "team", "flag"}
