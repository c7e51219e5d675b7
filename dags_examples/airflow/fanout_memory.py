"""Example: a memory-heavy fan-out under a memory pool (mirrorscale example DAG).

``plan`` splits the day's work into ``partitions`` skewed partitions;
``crunch`` is mapped over them (dynamic task mapping) and holds each
partition in memory. Every ``crunch`` instance runs in the pool
``mirrorscale_memory``, whose slots stand for memory units (e.g. 256 MiB
each): with mirrorscale in mode ``enforce`` the allocator sets each
instance's ``pool_slots`` from its predicted peak, so big partitions take more
of the pool and the fan-out never oversubscribes the machine.

Create the pool once (``airflow dags test`` ignores pools)::

    airflow pools set mirrorscale_memory 16 "memory units of 256 MiB (mirrorscale)"

Run it::

    airflow dags test ms_fanout_memory
    airflow dags test ms_fanout_memory -c '{"partitions": 8, "max_mb": 64}'
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

POOL = "mirrorscale_memory"


def partition_sizes(partitions: int, max_mb: int) -> list[int]:
    """Skewed partition sizes in MiB: the first is ``max_mb``, the rest shrink (at least 1)."""
    return [max(1, max_mb // (i + 1)) for i in range(partitions)]


@dag(
    dag_id="ms_fanout_memory",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"partitions": 3, "max_mb": 16},
    tags=["mirrorscale", "example"],
    doc_md=__doc__,
)
def ms_fanout_memory() -> None:
    @task
    def plan(params: dict | None = None) -> list[int]:
        """Today's partitions, in MiB."""
        return partition_sizes(int(params["partitions"]), int(params["max_mb"]))

    @task(pool=POOL, pool_slots=1)
    def crunch(mb: int) -> int:
        """Hold one partition in memory and checksum it."""
        block = bytearray(mb << 20)
        for i in range(0, len(block), 4096):
            block[i] = i & 0xFF
        return sum(block[::4096]) + mb

    @task
    def summarize(results: list[int]) -> int:
        """Combine the partitions' results."""
        return sum(results)

    summarize(crunch.expand(mb=plan()))


ms_fanout_memory()
