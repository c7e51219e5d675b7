"""Predicted branch: a small batch takes the light path, a large one the memory-hungry heavy path.

``load_batch`` reads the batch's partitions, ``inspect_batch`` looks at it and the flow
then submits either ``light_path`` or ``heavy_path``; ``report`` runs after both kinds.
mirrorscale records which tasks ran, so the history shows which branch each run took
(the path predictor learns it from the batch size), and in mode ``enforce`` a volatile
``heavy_path`` is mirrored on a sample of the batch before it starts. Run it as::

    python dags_examples/prefect/predicted_branch.py                # a small and a large batch
    python dags_examples/prefect/predicted_branch.py 30             # one batch of 30 partitions
    python dags_examples/prefect/predicted_branch.py --mode enforce

Each task's ``default_memory`` is its own static setting.
"""

from __future__ import annotations

import time

import numpy as np
from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

ITEMS_PER_PARTITION = 100_000
"""Items (int64) in one partition of a batch."""
HEAVY_THRESHOLD = 1_000_000
"""Batches of at least this many items take the heavy path."""


def batch_partitions(n_partitions: int) -> list[str]:
    """The names of a batch's partitions."""
    return [f"batch/part-{i:05d}.arrow" for i in range(n_partitions)]


@mirrorscale_policy(mode="recommend", default_memory="96MiB")
@task
def load_batch(partitions: list[str]) -> np.ndarray:
    """Read the batch (made up here): ``ITEMS_PER_PARTITION`` items per partition."""
    n = len(partitions) * ITEMS_PER_PARTITION
    return (np.arange(n, dtype=np.int64) * 7919) % 104_729


@task
def inspect_batch(batch: np.ndarray) -> str:
    """Decide the branch: ``"heavy"`` for batches of at least ``HEAVY_THRESHOLD`` items."""
    return "heavy" if len(batch) >= HEAVY_THRESHOLD else "light"


@mirrorscale_policy(mode="recommend", default_memory="96MiB")
@task
def light_path(batch: np.ndarray) -> int:
    """Cheap processing: a sum, no copies."""
    return int(batch.sum())


@mirrorscale_policy(mode="recommend", mirror=True, default_memory="96MiB")
@task
def heavy_path(batch: np.ndarray, write_seconds_per_million: float = 0.1) -> int:
    """Memory-hungry processing: sort and rank the batch (about 4x the batch), then write the ranked
    batch out block by block (simulated: ``write_seconds_per_million`` per million items). Returns a checksum."""
    order = np.argsort(batch, kind="stable")
    ranked = batch[order]
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(batch))
    checksum = 0
    for block in np.array_split(ranked, 64):
        checksum += int(block[::997].sum())
        time.sleep(len(block) * write_seconds_per_million / 1e6)
    return checksum + int(ranks[0])


@task
def report(branch: str, result: int) -> str:
    """Summarise the run."""
    return f"{branch}: {result}"


@flow(name="predicted-branch", task_runner=PredictiveTaskRunner())
def predicted_branch(n_partitions: int = 2) -> str:
    """Load a batch of ``n_partitions`` partitions, run the branch it needs, report."""
    batch = load_batch.submit(batch_partitions(n_partitions))
    branch = inspect_batch.submit(batch).result()
    path = heavy_path if branch == "heavy" else light_path
    result = path.submit(batch)
    return report.submit(branch, result).result()


def main(sizes: list[int] | None = None) -> list[str]:
    """Run one flow per batch size in partitions (default: one light and one heavy batch)."""
    return [predicted_branch(n_partitions=size) for size in (sizes or [2, 12])]


if __name__ == "__main__":
    from _example_cli import parse  # noqa: I001 - beside this file; sets MIRRORSCALE_MODE from --mode

    sizes = parse(__doc__, ["sizes"], many=True)
    import predicted_branch as example  # this file as a module: mirrors need an importable task function

    print(example.main(sizes or None))
