"""scikit-learn estimators for task resources (memory, CPU seconds, wall time).

They follow sklearn's contract (keyword-only parameters stored unchanged,
learned attributes end in ``_``, ``fit`` returns ``self``) and compose by
wrapping, like VPA's estimator chain::

    with_margin(with_confidence(PercentileRegressor(percentile=90)), 0.15)
    CostAwareQuantileRegressor(estimator=LogLinearRegressor())

==============================  ==============================================
estimator                       prediction (example: y = usages ~ 1.0 GB)
==============================  ==============================================
``PercentileRegressor``         p-th percentile of y, X ignored (p90: 1.05 GB)
``DecayingHistogramRegressor``  VPA histogram percentile, newest rows weigh
                                most (bucket end: ~1.07 GB)
``LogLinearRegressor``          log y ~ a + b log X (size-aware point model)
``CostAwareQuantileRegressor``  point model x the margin that would have
                                wasted least on out-of-fold rows, failures
                                priced as allocation + retry (~1.1 x)
``WithMargin``                  x (1 + margin) (0.15: 1.05 -> 1.21 GB)
``WithConfidence``              x (1 + multiplier / n_rows) (10 rows: x 1.1)
==============================  ==============================================

Rows are taken in the order given (oldest first) where decay matters.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from mirrorscale.predictors.quantile import cost_optimal_margin, decay_weights, log_size
from mirrorscale.predictors.vpa import DecayingHistogram


class _Regressor(RegressorMixin, BaseEstimator):
    def _validate(self, X, y="no_validation"):
        if isinstance(y, str) and y == "no_validation":
            return validate_data(self, X, reset=False)
        return validate_data(self, X, y, y_numeric=True)


class _ConstantRegressor(_Regressor):
    """A regressor that predicts one learned number ``value_`` for every row."""

    def predict(self, X):
        """The learned constant for every row of ``X``."""
        check_is_fitted(self)
        X = self._validate(X)
        return np.full(X.shape[0], self.value_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class PercentileRegressor(_ConstantRegressor):
    """Predicts the ``percentile`` of the training targets (numpy's linear interpolation)."""

    def __init__(self, *, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def fit(self, X, y):
        """Learn ``value_`` = the percentile of ``y``."""
        X, y = self._validate(X, y)
        self.value_ = float(np.percentile(y, self.percentile))
        return self


class DecayingHistogramRegressor(_ConstantRegressor):
    """VPA's decaying-histogram percentile of the targets (later rows weigh more)."""

    def __init__(self, *, percentile: float = 90.0, half_life: float | None = 100.0,
                 first_bucket: float = 1e7, ratio: float = 1.05) -> None:
        self.percentile = percentile
        self.half_life = half_life
        self.first_bucket = first_bucket
        self.ratio = ratio

    def fit(self, X, y):
        """Fill a histogram with ``y`` in row order; ``value_`` is its percentile."""
        X, y = self._validate(X, y)
        histogram = DecayingHistogram(first_bucket=self.first_bucket, ratio=self.ratio,
                                      half_life=self.half_life)
        for value in y:
            histogram.add(float(value))
        self.value_ = histogram.percentile(self.percentile)
        return self


class LogLinearRegressor(_Regressor):
    """Least squares of log y on signed-log features, newest rows weighted by ``half_life``.

    Targets that are not all positive are shifted by ``1 - min(y)`` before the
    log (and back after), so any numeric target works.
    """

    def __init__(self, *, half_life: float | None = None, alpha: float = 1e-6) -> None:
        self.half_life = half_life
        self.alpha = alpha

    def fit(self, X, y):
        """Learn ``coef_``, ``intercept_`` and the target shift ``shift_``."""
        X, y = self._validate(X, y)
        self.shift_ = 0.0 if y.min() > 0 else 1.0 - float(y.min())
        design = np.column_stack([np.ones(len(y)), log_size(X)])
        sw = np.sqrt(decay_weights(len(y), self.half_life))[:, None]
        gram = (design * sw).T @ (design * sw) + self.alpha * np.eye(design.shape[1])
        beta = np.linalg.solve(gram, (design * sw).T @ (np.log(y + self.shift_) * sw[:, 0]))
        self.intercept_, self.coef_ = float(beta[0]), beta[1:]
        return self

    def predict(self, X):
        """exp(intercept + coef . log X) - shift."""
        check_is_fitted(self)
        X = self._validate(X)
        return np.exp(self.intercept_ + log_size(X) @ self.coef_) - self.shift_


class _Wrapper(_Regressor):
    """Base of estimators that wrap another one (``estimator`` -> ``estimator_``)."""

    def _fit_inner(self, X, y):
        X, y = self._validate(X, y)
        self.estimator_ = clone(_default(self.estimator)).fit(X, y)
        self.n_rows_ = len(y)
        return X, y

    def _inner_predict(self, X):
        check_is_fitted(self)
        return self.estimator_.predict(self._validate(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = _default(self.estimator).__sklearn_tags__()
        tags.regressor_tags.poor_score = inner.regressor_tags.poor_score
        return tags


class WithMargin(_Wrapper):
    """``estimator`` x (1 + ``margin``)."""

    def __init__(self, estimator=None, *, margin: float = 0.15) -> None:
        self.estimator = estimator
        self.margin = margin

    def fit(self, X, y):
        """Fit the wrapped estimator."""
        self._fit_inner(X, y)
        return self

    def predict(self, X):
        """The wrapped prediction x (1 + margin)."""
        return self._inner_predict(X) * (1.0 + self.margin)


class WithConfidence(_Wrapper):
    """``estimator`` x (1 + ``multiplier`` / n_rows) ** ``exponent`` (VPA confidence scaling)."""

    def __init__(self, estimator=None, *, multiplier: float = 1.0, exponent: float = 1.0) -> None:
        self.estimator = estimator
        self.multiplier = multiplier
        self.exponent = exponent

    def fit(self, X, y):
        """Fit the wrapped estimator and remember how many rows it saw."""
        self._fit_inner(X, y)
        return self

    def predict(self, X):
        """The wrapped prediction scaled up for few rows."""
        return self._inner_predict(X) * (1.0 + self.multiplier / self.n_rows_) ** self.exponent


class CostAwareQuantileRegressor(_Wrapper):
    """A point model times the margin that minimises hypothetical wastage (a high quantile).

    Out-of-fold ratios ``(y + s) / (prediction + s)`` (``s`` shifts non-positive
    targets) feed :func:`~mirrorscale.predictors.quantile.cost_optimal_margin`;
    with fewer than ``2 * cv`` rows the in-sample ratios are used.
    """

    def __init__(self, estimator=None, *, cv: int = 5, failure_cost: float = 0.0) -> None:
        self.estimator = estimator
        self.cv = cv
        self.failure_cost = failure_cost

    def fit(self, X, y):
        """Fit the point model and choose ``margin_`` from its out-of-fold errors."""
        X, y = self._fit_inner(X, y)
        if len(y) >= 2 * self.cv:
            from sklearn.model_selection import cross_val_predict

            predicted = cross_val_predict(clone(self.estimator_), X, y, cv=self.cv)
        else:
            predicted = self.estimator_.predict(X)
        self.shift_ = max(0.0, 1.0 - float(min(y.min(), predicted.min())))
        ratios = (y + self.shift_) / (predicted + self.shift_)
        scale = predicted + self.shift_
        self.margin_ = cost_optimal_margin(ratios, scale, np.ones(len(y)), failure_cost=self.failure_cost)
        return self

    def predict(self, X):
        """margin x (point prediction + shift) - shift."""
        predicted = self._inner_predict(X)
        return self.margin_ * (predicted + self.shift_) - self.shift_

    def __sklearn_tags__(self):
        # A high quantile is not meant to maximise R^2: sklearn's "score > 0.5" check does not apply.
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


def _default(estimator):
    return LogLinearRegressor() if estimator is None else estimator


def with_margin(estimator=None, margin: float = 0.15) -> WithMargin:
    """Wrap ``estimator`` (default :class:`LogLinearRegressor`) to add ``margin``."""
    return WithMargin(_default(estimator), margin=margin)


def with_confidence(estimator=None, multiplier: float = 1.0, exponent: float = 1.0) -> WithConfidence:
    """Wrap ``estimator`` (default :class:`LogLinearRegressor`) in VPA-style confidence scaling."""
    return WithConfidence(_default(estimator), multiplier=multiplier, exponent=exponent)
