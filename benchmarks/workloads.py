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

Each base workload also has a ``drifted`` input (``mirror_accuracy.py --drift``):
today's data changed in content since the past runs, at about the same size
(``drift`` says how: more distinct keys, a 20x larger dimension table, rows
that arrive sorted, twice the columns at the same bytes, a coarse target, more
tags per record, a flatter Zipf, a doubled spike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
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
    drifted: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]] | None = None
    """Today's input when its content has changed since the past runs (``--drift``): about as many bytes."""
    drift: str = ""
    """What changed in :attr:`drifted`, in a few words."""


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


def make_groupby(seed: int, keys: int = 3_000_000) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """9 M rows, keys drawn from 3 M values (``keys``)."""
    import pandas as pd

    rng, n = _rng(seed), 9_000_000
    df = pd.DataFrame({"key": rng.integers(0, keys, n), "value": rng.random(n), "other": rng.random(n)})
    return (df,), {}


def pandas_join(facts: Any, dim: Any) -> float:
    """Join a fact table to a dimension table and aggregate per category."""
    joined = facts.merge(dim, on="item", how="left")
    joined["revenue"] = joined["qty"] * joined["price"]
    return float(joined.groupby("category")["revenue"].sum().sum())


def make_join(seed: int, items: int = 50_000) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """12 M facts, 50 k items (``items``)."""
    import pandas as pd

    rng, n = _rng(seed), 12_000_000
    facts = pd.DataFrame({"item": rng.integers(0, items, n), "qty": rng.integers(1, 10, n), "day": rng.integers(0, 365, n)})
    dim = pd.DataFrame({"item": range(items), "price": rng.random(items) * 100, "category": rng.integers(0, 40, items)})
    return (facts,), {"dim": dim}


# ---------------------------------------------------------------- pure Python
def sort_strings(words: list[str]) -> int:
    """Sort strings and keep both lists alive."""
    ordered = sorted(words)
    return len(ordered) + len(ordered[0])


def make_sort(seed: int, ordered: bool = False) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """4 M random 12-letter strings, in random order (or already sorted: ``ordered``)."""
    rng = _rng(seed)
    letters = rng.integers(97, 123, size=(4_000_000, 12), dtype="uint8")
    words = [row.tobytes().decode() for row in letters]
    return (sorted(words) if ordered else words,), {}


def json_parse(lines: list[str]) -> float:
    """Parse JSON lines and aggregate a field per user."""
    import json

    records = [json.loads(line) for line in lines]
    per_user: dict[int, float] = {}
    for rec in records:
        per_user[rec["user"]] = per_user.get(rec["user"], 0.0) + rec["amount"]
    return sum(per_user.values())


def make_json(seed: int, tags: int = 3, records: int = 400_000) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """400 k JSON records (``records``) with a nested list of 3 tags (``tags``)."""
    import json

    rng = _rng(seed)
    users, amounts = rng.integers(0, 50_000, records).tolist(), rng.random(records).tolist()
    lines = [json.dumps({"user": u, "amount": a, "tags": ["a", "b", *(str((u + i) % 97) for i in range(tags - 2))],
                         "ok": True})
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


def make_text(seed: int, zipf: float = 1.3) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """900 k lines of Zipf(``zipf``)-distributed words from a 400 k vocabulary (``w`` + hex rank)."""
    rng = _rng(seed)
    vocab = ["w" + format(i, "x") for i in range(400_000)]
    ranks = rng.zipf(zipf, size=900_000 * 12) % len(vocab)
    words = [vocab[r] for r in ranks.tolist()]
    return ([" ".join(words[i: i + 12]) for i in range(0, len(words), 12)],), {}


def dedupe_zipf(values: list[str]) -> int:
    """Distinct values, kept as a set and a sorted list: memory follows the cardinality."""
    distinct = set(values)
    return len(sorted(distinct))


def make_dedupe(seed: int, zipf: float = 1.2) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """6 M strings drawn (Zipf(``zipf``)) from 1.5 M possible values."""
    rng = _rng(seed)
    ranks = rng.zipf(zipf, size=6_000_000) % 1_500_000
    return ([f"user-{r:07d}-session" for r in ranks.tolist()],), {}


# ---------------------------------------------------------------- numpy / sklearn
def numpy_svd(x: Any) -> float:
    """Thin SVD of a tall matrix, then a projection."""
    import numpy as np

    u, s, vt = np.linalg.svd(x, full_matrices=False)
    return float(np.abs(u @ np.diag(s)).sum())


def make_svd(seed: int, columns: int = 40) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """400 k x 40 floats (16 M floats in ``columns`` columns)."""
    return (_rng(seed).random((16_000_000 // columns, columns)),), {}


def sklearn_forest(x: Any, y: Any) -> int:
    """Fit a small random forest."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=8, max_depth=None, min_samples_leaf=2, n_jobs=1, random_state=0)
    model.fit(x, y)
    return sum(tree.tree_.node_count for tree in model.estimators_)


def make_forest(seed: int, levels: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """60 k rows x 10 features; a noisy target, or one of ``levels`` values (then the trees stop early)."""
    import numpy as np

    rng = _rng(seed)
    x = rng.random((60_000, 10))
    y = x[:, 0] * 3 + rng.normal(size=60_000)
    return (x, np.floor(x[:, 0] * levels) if levels else y), {}


def spike_at_end(values: Any) -> float:
    """A cheap streaming pass, then one dense intermediate at the very end (over the values below 0.25)."""
    import numpy as np

    total = 0.0
    for chunk in np.array_split(values, 50):
        total += float(np.sqrt(chunk).sum())
    dense = np.outer(values[values < 0.25], np.ones(48))  # the late spike: its size follows the content
    return total + float(dense.sum())


def make_spike(seed: int, power: float = 1.0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """8 M floats in [0, 1), uniform (a quarter below 0.25) or skewed to 0 by ``power`` > 1."""
    return (_rng(seed).random(8_000_000) ** power,), {}


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
    Workload("pandas_groupby", pandas_groupby, make_groupby, drifted=partial(make_groupby, keys=9_000_000),
             drift="keys from 9 M values, not 3 M"),
    Workload("pandas_join", pandas_join, make_join, samplers={"dim": "workloads:keep_whole"},
             note="dimension table kept whole by a named sampler", drifted=partial(make_join, items=1_000_000),
             drift="1 M items in the dimension, not 50 k"),
    Workload("sort_strings", sort_strings, make_sort, drifted=partial(make_sort, ordered=True),
             drift="arrives already sorted"),
    Workload("numpy_svd", numpy_svd, make_svd, drifted=partial(make_svd, columns=80), drift="80 columns, not 40"),
    Workload("sklearn_forest", sklearn_forest, make_forest, drifted=partial(make_forest, levels=4),
             drift="a target of 4 levels, not noisy"),
    Workload("json_parse", json_parse, make_json, drifted=partial(make_json, tags=12, records=250_000),
             drift="12 tags a record, not 3"),
    Workload("word_count", word_count, make_text, drifted=partial(make_text, zipf=1.1), drift="Zipf 1.1, not 1.3"),
    Workload("spike_at_end", spike_at_end, make_spike, drifted=partial(make_spike, power=2.0),
             drift="half the values spike, not a quarter"),
    Workload("dedupe_zipf", dedupe_zipf, make_dedupe, drifted=partial(make_dedupe, zipf=1.05),
             drift="Zipf 1.05, not 1.2"),
    Workload("dedupe_zipf_keys", dedupe_zipf, make_dedupe, samplers={"0": "keys"},
             note="dedupe_zipf with its values named as the keys it counts", variant_of="dedupe_zipf",
             drifted=partial(make_dedupe, zipf=1.05), drift="Zipf 1.05, not 1.2"),
    Workload("word_count_named", word_count, make_text, samplers={"0": "workloads:lines_and_words"},
             note="word_count with the sampler a user would name: the default row sample, naming the words as keys",
             variant_of="word_count", drifted=partial(make_text, zipf=1.1), drift="Zipf 1.1, not 1.3"),
]
"""The benchmark suite, in the order the table prints it."""
