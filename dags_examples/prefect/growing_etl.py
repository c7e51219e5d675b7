"""Growing ETL: the input grows every day, and so does the memory of ``transform``.

mirrorscale records each task run (``extract``, ``transform``, ``load``) with the size
of its parameters and the policy-named ``n_rows``, so the history shows the growth
that the predictors learn from. Run it as::

    python dags_examples/prefect/growing_etl.py            # days 1..3, small inputs
    python dags_examples/prefect/growing_etl.py 5 20000    # days 1..5, 20000 base rows

against whatever Prefect API is configured (a temporary local one by default), then
``mirrorscale history`` lists the traces.
"""

from __future__ import annotations

import sys

from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy


@mirrorscale_policy(features=["n_rows"])
@task
def extract(n_rows: int) -> list[dict[str, float]]:
    """Read ``n_rows`` rows (made up here)."""
    return [{"id": float(i), "value": float(i % 97)} for i in range(n_rows)]


@task
def transform(rows: list[dict[str, float]]) -> list[tuple[float, float]]:
    """A transform whose memory grows with its input: it keeps two copies."""
    doubled = [dict(r, value=r["value"] * 2) for r in rows]
    return [(r["id"], r["value"]) for r in doubled]


@task
def load(rows: list[tuple[float, float]]) -> int:
    """Load the rows somewhere (here: count them)."""
    return len(rows)


@flow(name="growing-etl", task_runner=PredictiveTaskRunner())
def growing_etl(day: int = 1, base_rows: int = 5_000) -> int:
    """One day of the ETL: ``base_rows * day`` rows flow through extract -> transform -> load."""
    rows = extract.submit(base_rows * day)
    shaped = transform.submit(rows)
    return load.submit(shaped).result()


def main(days: int = 3, base_rows: int = 5_000) -> list[int]:
    """Run days ``1..days``; return the rows loaded per day."""
    return [growing_etl(day=day, base_rows=base_rows) for day in range(1, days + 1)]


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(main(*args))
