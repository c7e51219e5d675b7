"""Predicted branch: a small input takes the light path, a large one the heavy path.

``inspect`` looks at the batch; the flow then submits either ``light_path`` or
``heavy_path``, and ``report`` runs after both kinds. mirrorscale records which
tasks ran, so the history shows which branch each run took (the path predictor
learns from it). Run it as::

    python dags_examples/prefect/predicted_branch.py           # a small and a large batch
    python dags_examples/prefect/predicted_branch.py 300000    # one batch of that size
"""

from __future__ import annotations

import sys

from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

HEAVY_THRESHOLD = 100_000


@mirrorscale_policy(features=["batch_size"])
@task
def inspect_batch(batch_size: int) -> str:
    """Decide the branch: ``"heavy"`` for batches of at least ``HEAVY_THRESHOLD`` items."""
    return "heavy" if batch_size >= HEAVY_THRESHOLD else "light"


@task
def light_path(batch_size: int) -> int:
    """Cheap processing: a running sum."""
    return sum(range(batch_size))


@task
def heavy_path(batch_size: int) -> int:
    """Memory-hungry processing: materialise the batch and sort it."""
    values = sorted((i * 7919) % 104_729 for i in range(batch_size))
    return values[len(values) // 2]


@task
def report(branch: str, result: int) -> str:
    """Summarise the run."""
    return f"{branch}: {result}"


@flow(name="predicted-branch", task_runner=PredictiveTaskRunner())
def predicted_branch(batch_size: int = 20_000) -> str:
    """Inspect the batch, run the branch it needs, report."""
    branch = inspect_batch.submit(batch_size).result()
    path = heavy_path if branch == "heavy" else light_path
    result = path.submit(batch_size)
    return report.submit(branch, result).result()


def main(sizes: list[int] | None = None) -> list[str]:
    """Run one flow per batch size (default: one light and one heavy batch)."""
    return [predicted_branch(batch_size=size) for size in (sizes or [20_000, 150_000])]


if __name__ == "__main__":
    print(main([int(a) for a in sys.argv[1:]] or None))
