"""Workloads for ``benchmarks/mirror_accuracy.py``: real tasks whose cost grows differently.

Each :class:`Workload` pairs a task function (module level, so a mirror can
import it) with a seeded input generator. The functions import their heavy
libraries inside, like well-behaved task code.

==================  ==================================  ========================================
workload            task                                how cost grows with the input
==================  ==================================  ========================================
pandas_groupby      group-by with four aggregates       linear, plus hash table per distinct key
pandas_join         fact table join dimension, then sum linear in the facts (dimension kept whole)
sort_strings        sort a list of random strings       n log n time, linear memory
numpy_svd           thin SVD of a tall matrix           linear in rows
sklearn_forest      random forest fit                   n log n time, tree size grows with n
json_parse          parse JSON lines, aggregate         linear
word_count          tokenise text, count words          linear time, vocabulary grows sublinearly
spike_at_end        cheap pass, then a dense matrix     memory spike near the end, linear
dedupe_zipf         distinct values of Zipf strings     memory set by the content (cardinality)
dedupe_zipf_keys    dedupe_zipf, values named as keys   as dedupe_zipf (``"keys"``: their growth
                    (``samplers={"0": "keys"}``)        informs the memory fit)
word_count_named    word_count, its words named as keys as word_count (the user's sampler names the
                    by a sampler (:func:`lines_and_words`) keys: their growth informs the memory fit)
==================  ==================================  ========================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WORKLOADS", "Workload", "keep_whole"]


@dataclass(frozen=True)
class Workload:
    """A task function, its input generator and (rarely) samplers a user would name for it."""

    name: str
    fn: Callable[..., Any]
    make_input: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]]
    samplers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    variant_of: str = ""
    """Set on a variant of another workload (other samplers): shown, not counted in the suite's medians."""


def keep_whole(value: Any, fraction: float, seed: int) -> Any:
    """A sampler that keeps a small lookup table whole (as a policy would name it for a join)."""
    return value


def _rng(seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed)


# ---------------------------------------------------------------- pandas
def pandas_groupby(df: Any) -> int:
    """Group by a high-cardinality key and aggregate."""
    out = df.groupby("key").agg(total=("value", "sum"), mean=("value", "mean"), n=("value", "size"),
                                top=("other", "max"))
    return len(out)


def make_groupby(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """9 M rows, keys drawn from 3 M values."""
    import pandas as pd

    rng, n = _rng(seed), 9_000_000
    df = pd.DataFrame({"key": rng.integers(0, 3_000_000, n), "value": rng.random(n), "other": rng.random(n)})
    return (df,), {}


def pandas_join(facts: Any, dim: Any) -> float:
    """Join a fact table to a dimension table and aggregate per category."""
    joined = facts.merge(dim, on="item", how="left")
    joined["revenue"] = joined["qty"] * joined["price"]
    return float(joined.groupby("category")["revenue"].sum().sum())


def make_join(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """12 M facts, 50 k items."""
    import pandas as pd

    rng, n, items = _rng(seed), 12_000_000, 50_000
    facts = pd.DataFrame({"item": rng.integers(0, items, n), "qty": rng.integers(1, 10, n), "day": rng.integers(0, 365, n)})
    dim = pd.DataFrame({"item": range(items), "price": rng.random(items) * 100, "category": rng.integers(0, 40, items)})
    return (facts,), {"dim": dim}


# ---------------------------------------------------------------- pure Python
def sort_strings(words: list[str]) -> int:
    """Sort strings and keep both lists alive."""
    ordered = sorted(words)
    return len(ordered) + len(ordered[0])


def make_sort(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """4 M random 12-letter strings."""
    rng = _rng(seed)
    letters = rng.integers(97, 123, size=(4_000_000, 12), dtype="uint8")
    return ([row.tobytes().decode() for row in letters],), {}


def json_parse(lines: list[str]) -> float:
    """Parse JSON lines and aggregate a field per user."""
    import json

    records = [json.loads(line) for line in lines]
    per_user: dict[int, float] = {}
    for rec in records:
        per_user[rec["user"]] = per_user.get(rec["user"], 0.0) + rec["amount"]
    return sum(per_user.values())


def make_json(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """400 k JSON records with a nested list."""
    import json

    rng = _rng(seed)
    users, amounts = rng.integers(0, 50_000, 400_000).tolist(), rng.random(400_000).tolist()
    lines = [json.dumps({"user": u, "amount": a, "tags": ["a", "b", str(u % 97)], "ok": True})
             for u, a in zip(users, amounts)]
    return (lines,), {}


def word_count(lines: list[str]) -> int:
    """Tokenise lines and count words."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    token = re.compile(r"[a-z0-9]+")
    for line in lines:
        counts.update(token.findall(line.lower()))
    return len(counts)


def make_text(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """900 k lines of Zipf-distributed words from a 400 k vocabulary (``w`` + hex rank)."""
    rng = _rng(seed)
    vocab = ["w" + format(i, "x") for i in range(400_000)]
    ranks = rng.zipf(1.3, size=900_000 * 12) % len(vocab)
    words = [vocab[r] for r in ranks.tolist()]
    return ([" ".join(words[i: i + 12]) for i in range(0, len(words), 12)],), {}


def dedupe_zipf(values: list[str]) -> int:
    """Distinct values, kept as a set and a sorted list: memory follows the cardinality."""
    distinct = set(values)
    return len(sorted(distinct))


def make_dedupe(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """6 M strings drawn (Zipf) from 1.5 M possible values."""
    rng = _rng(seed)
    ranks = rng.zipf(1.2, size=6_000_000) % 1_500_000
    return ([f"user-{r:07d}-session" for r in ranks.tolist()],), {}


# ---------------------------------------------------------------- numpy / sklearn
def numpy_svd(x: Any) -> float:
    """Thin SVD of a tall matrix, then a projection."""
    import numpy as np

    u, s, vt = np.linalg.svd(x, full_matrices=False)
    return float(np.abs(u @ np.diag(s)).sum())


def make_svd(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """400 k x 40 floats."""
    return (_rng(seed).random((400_000, 40)),), {}


def sklearn_forest(x: Any, y: Any) -> int:
    """Fit a small random forest."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=8, max_depth=None, min_samples_leaf=2, n_jobs=1, random_state=0)
    model.fit(x, y)
    return sum(tree.tree_.node_count for tree in model.estimators_)


def make_forest(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """60 k rows x 10 features."""
    rng = _rng(seed)
    x = rng.random((60_000, 10))
    return (x, x[:, 0] * 3 + rng.normal(size=60_000)), {}


def spike_at_end(values: Any) -> float:
    """A cheap streaming pass, then one dense intermediate at the very end."""
    import numpy as np

    total = 0.0
    for chunk in np.array_split(values, 50):
        total += float(np.sqrt(chunk).sum())
    dense = np.outer(values[: len(values) // 4], np.ones(48))  # the late spike
    return total + float(dense.sum())


def make_spike(seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """8 M floats."""
    return (_rng(seed).random(8_000_000),), {}


# ---------------------------------------------------------------- samplers a user would name
def _words(lines: Any) -> list[str]:
    """The words :func:`word_count` counts, in the sampled lines."""
    import re

    token = re.compile(r"[a-z0-9]+")
    return [word for line in lines for word in token.findall(line.lower())]


def lines_and_words(value: Any, fraction: float, seed: int) -> Any:
    """The default row sample of text lines, naming their words as the keys the task counts.

    The words' distinct profile (measured on the sample) tells the mirror that
    the vocabulary, and so the counter, grows sub-linearly.
    """
    from mirrorscale.mirror.samplers import sample_value

    return sample_value(value, fraction, seed)


lines_and_words.keys = _words  # type: ignore[attr-defined]


WORKLOADS = [
    Workload("pandas_groupby", pandas_groupby, make_groupby),
    Workload("pandas_join", pandas_join, make_join, samplers={"dim": "workloads:keep_whole"},
             note="dimension table kept whole by a named sampler"),
    Workload("sort_strings", sort_strings, make_sort),
    Workload("numpy_svd", numpy_svd, make_svd),
    Workload("sklearn_forest", sklearn_forest, make_forest),
    Workload("json_parse", json_parse, make_json),
    Workload("word_count", word_count, make_text),
    Workload("spike_at_end", spike_at_end, make_spike),
    Workload("dedupe_zipf", dedupe_zipf, make_dedupe),
    Workload("dedupe_zipf_keys", dedupe_zipf, make_dedupe, samplers={"0": "keys"},
             note="dedupe_zipf with its values named as the keys it counts", variant_of="dedupe_zipf"),
    Workload("word_count_named", word_count, make_text, samplers={"0": "workloads:lines_and_words"},
             note="word_count with the sampler a user would name: the default row sample, naming the words as keys",
             variant_of="word_count"),
]
"""The benchmark suite, in the order the table prints it."""
