"""Path prediction: which branch a run will take, from its context.

A *branch* is a label for the set of downstream tasks a run executed (e.g.
``"align+qc"``); context is a mapping of features known before the run:
input size, parameters (numbers or strings), and the start time, from which
hour and weekday are derived (cyclically encoded). The engine learns a small
decision tree and falls back to the most frequent branch while history is
short or when the tree does not beat that fallback out of sample.

``PathPredictor.fit`` reports ``accuracy_`` (out-of-sample, from
cross-validation or, with few runs, leave-one-out of the fallback) next to
``baseline_accuracy_`` (always predicting the most frequent branch).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def branch_label(tasks: Iterable[str]) -> str:
    """A stable label for the set of downstream tasks a run executed."""
    return "+".join(sorted(set(tasks))) or "(none)"


def context_features(context: Mapping[str, Any]) -> dict[str, float | str]:
    """Flatten a run's context: numbers stay, strings are categories, ``when`` becomes hour/weekday.

    ``when`` may be a datetime or epoch milliseconds; hour and weekday are
    encoded on circles (sin/cos) so 23:00 is close to 00:00.
    """
    features: dict[str, float | str] = {}
    for key, value in context.items():
        if key == "when" and value is not None:
            moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, timezone.utc)
            hour = moment.hour + moment.minute / 60
            features["hour_sin"], features["hour_cos"] = math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24)
            day = moment.weekday()
            features["weekday_sin"], features["weekday_cos"] = math.sin(2 * math.pi * day / 7), math.cos(2 * math.pi * day / 7)
        elif isinstance(value, bool):
            features[key] = float(value)
        elif isinstance(value, (int, float)):
            features[key] = float(value)
        elif value is not None:
            features[key] = str(value)
    return features


class PathPredictor:
    """Predicts a run's branch from its context; most-frequent-branch fallback.

    Parameters are keyword-only and stored unchanged; learned attributes end
    in ``_`` and ``fit`` returns ``self``, as in scikit-learn.
    """

    def __init__(self, *, min_runs: int = 10, max_depth: int = 4, cv: int = 5, random_state: int = 0) -> None:
        self.min_runs = min_runs
        self.max_depth = max_depth
        self.cv = cv
        self.random_state = random_state

    def fit(self, contexts: Sequence[Mapping[str, Any]], branches: Sequence[str]) -> PathPredictor:
        """Learn from past runs' contexts and the branches they took."""
        counts = Counter(branches)
        self.classes_ = sorted(counts)
        self.most_frequent_ = counts.most_common(1)[0][0] if counts else None
        self.baseline_accuracy_ = counts[self.most_frequent_] / len(branches) if branches else 0.0
        self.model_ = None
        self.accuracy_ = self.baseline_accuracy_
        self.uses_model_ = False
        if len(branches) < self.min_runs or len(counts) < 2:
            return self
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.tree import DecisionTreeClassifier

        model = make_pipeline(DictVectorizer(sparse=False),
                              DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state))
        rows = [context_features(c) for c in contexts]
        labels = np.asarray(branches)
        folds = min(self.cv, min(counts.values()))
        if folds >= 2:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
            accuracy = float(np.mean(cross_val_score(model, rows, labels, cv=splitter)))
        else:
            accuracy = 0.0
        if accuracy > self.baseline_accuracy_:
            self.model_ = model.fit(rows, labels)
            self.accuracy_ = accuracy
            self.uses_model_ = True
        return self

    def predict(self, contexts: Sequence[Mapping[str, Any]]) -> list[str]:
        """The predicted branch of each context."""
        if self.model_ is None:
            return [self.most_frequent_] * len(contexts)
        return list(self.model_.predict([context_features(c) for c in contexts]))

    def describe(self) -> str:
        """One sentence on what the predictor uses and how accurate it is."""
        if not self.uses_model_:
            return (f"most frequent branch {self.most_frequent_!r} "
                    f"(right {self.baseline_accuracy_:.0%} of the time; no model beats it yet)")
        return (f"decision tree on context: {self.accuracy_:.0%} accurate out of sample "
                f"(most frequent branch alone: {self.baseline_accuracy_:.0%})")
