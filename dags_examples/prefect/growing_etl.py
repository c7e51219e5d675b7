"""Growing ETL: the input grows (and sometimes shrinks or spikes), and so does the memory of ``transform``.

``extract`` reads one day's partitions into a table, ``transform`` reshapes it (its
memory grows with the table: it keeps two enlarged copies) and ``load`` writes the
result. mirrorscale records each task run with the size of its parameters (the
partition list, the table) and the policy-named ``n_partitions``, so the history shows
the growth the predictors learn from. Run it as::

    python dags_examples/prefect/growing_etl.py                  # days 1..3, small inputs
    python dags_examples/prefect/growing_etl.py 5 40             # days 1..5, 40 partitions a day-unit
    python dags_examples/prefect/growing_etl.py --mode enforce   # apply the allocations

against whatever Prefect API is configured (a temporary local one by default), then
``mirrorscale history`` lists the traces. Each task's ``default_memory`` is its own
static setting: what it gets before mirrorscale knows better.
"""

from __future__ import annotations

import numpy as np
from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

ROWS_PER_PARTITION = 10_000
"""Rows in one partition; a row is 4 float64 columns (32 bytes)."""


def partitions_for(day: int, n_partitions: int) -> list[str]:
    """The names of ``day``'s partitions (what a real extract would list in a bucket)."""
    return [f"day-{day:03d}/part-{i:05d}.parquet" for i in range(n_partitions)]


@mirrorscale_policy(mode="recommend", default_memory="128MiB")
@task
def extract(partitions: list[str]) -> np.ndarray:
    """Read the partitions into one table (made up here): ``ROWS_PER_PARTITION`` rows each."""
    n_rows = len(partitions) * ROWS_PER_PARTITION
    rng = np.random.default_rng(n_rows)
    table = np.empty((n_rows, 4))
    table[:, 0] = np.arange(n_rows)
    table[:, 1] = rng.integers(0, 97, n_rows)
    table[:, 2] = rng.random(n_rows)
    table[:, 3] = table[:, 2] * 100.0
    return table


@mirrorscale_policy(mode="recommend", mirror=True, default_memory="160MiB")
@task
def transform(table: np.ndarray) -> np.ndarray:
    """Reshape the table; its memory is about four times the table's (two enlarged copies).

    Returns one row of sums per key (97 keys), so little memory leaves the task.
    """
    cleaned = np.where(np.isnan(table), 0.0, table)
    enriched = np.hstack([cleaned, cleaned * 2.0])
    keys = enriched[:, 1].astype(np.int64)
    return np.stack([np.bincount(keys, weights=enriched[:, j], minlength=97) for j in range(enriched.shape[1])],
                    axis=1)


@mirrorscale_policy(mode="recommend", default_memory="64MiB")
@task
def load(sums: np.ndarray) -> int:
    """Load the result somewhere (here: count the keys with data)."""
    return int((sums[:, 0] != 0).sum())


@flow(name="growing-etl", task_runner=PredictiveTaskRunner())
def growing_etl(day: int = 1, n_partitions: int = 5) -> int:
    """One day of the ETL: ``n_partitions`` partitions flow through extract -> transform -> load."""
    table = extract.submit(partitions_for(day, n_partitions))
    sums = transform.submit(table)
    return load.submit(sums).result()


def main(days: int = 3, base_partitions: int = 5) -> list[int]:
    """Run days ``1..days`` with ``base_partitions * day`` partitions; return the keys loaded per day."""
    return [growing_etl(day=day, n_partitions=base_partitions * day) for day in range(1, days + 1)]


if __name__ == "__main__":
    from _example_cli import parse  # noqa: I001 - beside this file; sets MIRRORSCALE_MODE from --mode

    args = parse(__doc__, ["days", "base_partitions"])
    import growing_etl as example  # this file as a module: mirrors need an importable task function

    print(example.main(*args))
