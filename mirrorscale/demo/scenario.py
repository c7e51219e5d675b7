"""What the demo runs: the Prefect example pipelines, each with a schedule of inputs that grow, shrink and spike.

Every pipeline is one flow of ``dags_examples/prefect`` imported as a module (so its
tasks can be mirrored). Both phases of the demo run the *same* schedule:

==================  ===============================  =================================
pipeline            input of one run                 what changes
==================  ===============================  =================================
``growing-etl``     a day's partitions (10k rows     grows day by day, shrinks, spikes
                    each)                            once, grows past the static limit
``predicted-branch``a batch's partitions (100k       small batches take the light path,
                    items each)                      large ones the heavy path; spikes
``memory-fanout``   chunks of 24..400 MiB of         its owner sized ``crunch`` for the
                    working memory, mapped           largest chunk: nothing is killed,
                                                     but few chunks fit at once
==================  ===============================  =================================

The fan-out runs on a process pool (one chunk per worker process at a time, so each
chunk's memory is measured and guarded on its own) with memory admission on a
``FANOUT_CAPACITY`` limit; the other two on Prefect's thread pool, one task at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FANOUT_CAPACITY", "FANOUT_WORKERS", "Pipeline", "RunInput", "pipelines"]

FANOUT_WORKERS = 2
"""Process-pool workers of the fan-out."""
FANOUT_CAPACITY = "768MiB"
"""Memory the fan-out's chunks are admitted against (the worker's capacity)."""
CHAIN_CAPACITY = "4GiB"
"""Memory the thread-pool pipelines are admitted against."""


@dataclass(frozen=True)
class RunInput:
    """One run of a pipeline: a label for the screen, the flow's parameters, and what kind of change it is."""

    label: str
    params: dict[str, Any]
    kind: str = ""  # "grow", "shrink", "spike" or ""


@dataclass(frozen=True)
class Pipeline:
    """One example flow and its schedule.

    ``module``/``flow`` name the example (``dags_examples/prefect/<module>.py``);
    ``focus`` are the tasks whose decisions the demo's one line per run shows;
    ``process_pool`` runs it on a process pool with memory admission on ``capacity``.
    """

    name: str
    module: str
    flow: str
    focus: tuple[str, ...]
    runs: tuple[RunInput, ...]
    process_pool: bool = False
    capacity: str = CHAIN_CAPACITY


def _kinds(values: list[int]) -> list[str]:
    """``grow``/``shrink`` against the run before, ``spike`` above 1.5x every earlier run."""
    kinds = [""]
    for i in range(1, len(values)):
        value, before = values[i], values[i - 1]
        kinds.append("spike" if value > 1.5 * max(values[:i]) else "grow" if value > before else "shrink"
                     if value < before else "")
    return kinds


def _etl(days: list[int]) -> Pipeline:
    runs = tuple(RunInput(f"day {d:2d}: {n:3d} partitions", {"day": d, "n_partitions": n}, kind)
                 for d, (n, kind) in enumerate(zip(days, _kinds(days)), start=1))
    return Pipeline("growing-etl", "growing_etl", "growing_etl", ("transform", "extract"), runs)


def _branch(batches: list[int]) -> Pipeline:
    runs = tuple(RunInput(f"batch of {n:2d} partitions", {"n_partitions": n}, kind)
                 for n, kind in zip(batches, _kinds(batches)))
    return Pipeline("predicted-branch", "predicted_branch", "predicted_branch", ("heavy_path", "light_path"), runs)


def _fanout(runs: list[list[int]], hold: float) -> Pipeline:
    inputs = []
    for sizes in runs:
        spike = max(sizes) > 3 * sorted(sizes)[len(sizes) // 2]
        label = f"{len(sizes)} chunks of {min(sizes)}..{max(sizes)} MiB"
        inputs.append(RunInput(label, {"sizes_mib": sizes, "hold_seconds": hold}, "spike" if spike else ""))
    return Pipeline("memory-fanout", "memory_fanout", "memory_fanout", ("crunch",), tuple(inputs),
                    process_pool=True, capacity=FANOUT_CAPACITY)


def pipelines(quick: bool = False) -> list[Pipeline]:
    """The demo's pipelines and schedules (``quick``: a short version for tests, about a third)."""
    if quick:
        return [_etl([20, 30, 45, 60, 40, 25, 150, 50, 70, 90, 120]),
                _fanout([[32, 64, 400, 48]], hold=0.5)]
    return [
        _etl([20, 30, 40, 55, 70, 90, 60, 35, 200, 45, 80, 120]),
        _branch([3, 12, 16, 4, 20, 24, 2, 14, 28, 6, 18, 48, 22, 5]),
        _fanout([[24, 64, 32, 96, 48, 72], [40, 64, 400, 56, 96, 88]], hold=3.0),
    ]
