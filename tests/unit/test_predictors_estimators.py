"""sklearn's estimator checks and the numeric effect of each estimator stage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mirrorscale.predictors.estimators import (
    CostAwareQuantileRegressor,
    DecayingHistogramRegressor,
    LogLinearRegressor,
    PercentileRegressor,
    WithConfidence,
    WithMargin,
    with_confidence,
    with_margin,
)

ESTIMATORS = [
    PercentileRegressor(),
    DecayingHistogramRegressor(),
    LogLinearRegressor(),
    WithMargin(PercentileRegressor()),
    WithConfidence(LogLinearRegressor()),
    CostAwareQuantileRegressor(LogLinearRegressor()),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_chain_numeric_effect():
    X = np.zeros((10, 1))
    y = np.arange(1.0, 11.0) * 1e8  # 0.1 .. 1.0 GB
    p90 = np.percentile(y, 90)
    chained = with_margin(with_confidence(PercentileRegressor(percentile=90)), 0.15).fit(X, y)
    assert chained.predict(X[:1])[0] == pytest.approx(p90 * 1.15 * 1.1)


def test_loglinear_recovers_power_law():
    rng = np.random.default_rng(0)
    size = rng.uniform(1e6, 1e9, 200)
    usage = 3.0 * size**0.8
    model = LogLinearRegressor().fit(size[:, None], usage)
    assert model.predict(np.array([[5e8]]))[0] == pytest.approx(3.0 * 5e8**0.8, rel=0.02)


def test_cost_aware_predicts_a_high_quantile():
    rng = np.random.default_rng(1)
    size = rng.uniform(1e6, 1e9, 300)
    usage = size * rng.lognormal(0.0, 0.1, 300)
    model = CostAwareQuantileRegressor(LogLinearRegressor()).fit(size[:, None], usage)
    covered = np.mean(model.predict(size[:, None]) >= usage)
    assert model.margin_ > 1.0 and covered > 0.8
