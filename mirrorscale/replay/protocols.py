"""The two replay protocols: ``chronological`` and ``sizey``.

``chronological`` (what a pipeline plugin lives through)
    Per workflow, runs in submit order (ties keep file order). Each task type
    gets a fresh sizer; every run is sized from the earlier runs of the same
    task type only, then observed. Usage = ``peak_rss``.

``sizey`` (the accounting of the Sizey paper's harness, dos-group/sizey ``main.py``)
    Per workflow, for each ``process`` in order of first appearance in the file:
    keep rows with usage (``rss``) > 0; skip the process if fewer than 34 rows
    remain or any row has ``realtime`` == 0. Split the rows (file order) with
    ``train_test_split(test_size=0.7, random_state=1996)``: the 30 % train part
    is the warm-up history (observed in its shuffled order, never scored), the
    70 % test part is replayed in its shuffled order; each replayed run is
    observed after it is scored, so history grows. A failed attempt costs
    allocation x full runtime. The ``workflow`` method is scored against
    ``peak_rss`` instead of ``rss``, as the harness's Workflow-Presets row is.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, Sequence

import numpy as np

from mirrorscale.predictors.sizing import SizingMethod
from mirrorscale.replay.accounting import Tally, replay_run
from mirrorscale.replay.records import ReplayTask

Progress = Callable[[int], None]
"""Called with the number of runs just replayed (for progress bars)."""

SIZEY_MIN_ROWS = 34
SIZEY_TEST_SIZE = 0.7
SIZEY_SEED = 1996
PEAK_SCORED_METHODS = frozenset({"workflow"})
"""Methods the Sizey harness scores against ``peak_rss`` rather than ``rss``."""


def by_workflow(tasks: Iterable[ReplayTask]) -> dict[str, list[ReplayTask]]:
    """Group records by workflow, keeping their order."""
    groups: dict[str, list[ReplayTask]] = defaultdict(list)
    for task in tasks:
        groups[task.workflow].append(task)
    return dict(groups)


def new_workflow(method: SizingMethod) -> object | None:
    """What ``method``'s sizers of one workflow share (None for methods that share nothing)."""
    factory = getattr(method, "new_workflow", None)
    return None if factory is None else factory()


def new_sizer(method: SizingMethod, shared: object | None) -> object:
    """A fresh sizer of ``method``, joined to the workflow's ``shared`` state when there is one."""
    return method.new_sizer() if shared is None else method.new_sizer(shared)


def _no_progress(_: int) -> None:
    return None


def chronological(tasks: Sequence[ReplayTask], methods: Sequence[SizingMethod],
                  progress: Progress = _no_progress) -> list[Tally]:
    """Replay every workflow in submit order with each method; one :class:`Tally` per pair."""
    tallies: list[Tally] = []
    for workflow, runs in by_workflow(tasks).items():
        ordered = sorted(runs, key=lambda r: r.order)  # stable: ties keep file order
        for method in methods:
            tally = Tally(workflow, method.name)
            sizers: dict[str, object] = {}
            shared = new_workflow(method)
            for run in ordered:
                sizer = sizers.get(run.task)
                if sizer is None:
                    sizer = sizers[run.task] = new_sizer(method, shared)
                tally.add(replay_run(sizer, run))
                sizer.observe(run)
            progress(len(ordered))
            tallies.append(tally)
    return tallies


def sizey_splits(runs: Sequence[ReplayTask], *, min_rows: int = SIZEY_MIN_ROWS,
                 test_size: float = SIZEY_TEST_SIZE, seed: int = SIZEY_SEED,
                 ) -> list[tuple[list[ReplayTask], list[ReplayTask]]]:
    """The harness's (warm-up, replay) lists per eligible process, processes in first-appearance order."""
    from sklearn.model_selection import train_test_split

    per_task: dict[str, list[ReplayTask]] = defaultdict(list)
    for run in runs:
        per_task[run.task].append(run)
    splits = []
    for rows in per_task.values():
        rows = [r for r in rows if r.usage > 0]
        if len(rows) < min_rows or any(r.runtime_ms == 0 for r in rows):
            continue
        train, test = train_test_split(np.arange(len(rows)), test_size=test_size, random_state=seed)
        splits.append(([rows[i] for i in train], [rows[i] for i in test]))
    return splits


def sizey(tasks: Sequence[ReplayTask], methods: Sequence[SizingMethod],
          progress: Progress = _no_progress, *, seed: int = SIZEY_SEED) -> list[Tally]:
    """Replay with the Sizey paper's protocol; one :class:`Tally` per (workflow, method)."""
    tallies: list[Tally] = []
    for workflow, runs in by_workflow(tasks).items():
        splits = sizey_splits(runs, seed=seed)
        for method in methods:
            tally = Tally(workflow, method.name)
            against_peak = method.name in PEAK_SCORED_METHODS
            shared = new_workflow(method)
            for warmup, replayed in splits:
                sizer = new_sizer(method, shared)
                for run in warmup:
                    sizer.observe(run)
                for run in replayed:
                    usage = run.peak if against_peak and run.peak is not None else None
                    tally.add(replay_run(sizer, run, usage))
                    sizer.observe(run)
                progress(len(replayed))
            tallies.append(tally)
    return tallies


PROTOCOLS: dict[str, Callable[..., list[Tally]]] = {"chronological": chronological, "sizey": sizey}
"""Protocol name -> replay function."""

USAGE_COLUMN = {"chronological": "peak_rss", "sizey": "rss"}
"""The trace column each protocol scores."""
