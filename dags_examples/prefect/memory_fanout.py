"""Memory-heavy fan-out: ``.map()`` over chunks whose memory differs a lot.

Each ``crunch`` allocates (and touches) a buffer of its chunk's size; ``combine``
adds the results. The per-chunk traces are what memory admission sizes from. Run
it as::

    python dags_examples/prefect/memory_fanout.py          # 6 chunks of 4..24 MiB
    python dags_examples/prefect/memory_fanout.py 8 64     # 8 chunks, largest 64 MiB
"""

from __future__ import annotations

import sys
import time

from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

MiB = 1024 * 1024


@mirrorscale_policy(features=["chunk_mib"])
@task
def crunch(chunk_mib: int) -> int:
    """Hold ``chunk_mib`` MiB for a moment and return a checksum."""
    buffer = bytearray(chunk_mib * MiB)
    for offset in range(0, len(buffer), 4096):  # touch every page so it is resident
        buffer[offset] = offset % 251
    time.sleep(0.2)
    return sum(buffer[::65536])


@task
def combine(parts: list[int]) -> int:
    """Add the chunk checksums."""
    return sum(parts)


@flow(name="memory-fanout", task_runner=PredictiveTaskRunner())
def memory_fanout(chunks: int = 6, largest_mib: int = 24) -> int:
    """Fan out ``chunks`` crunches of growing size, then combine them."""
    sizes = [max(1, largest_mib * (i + 1) // chunks) for i in range(chunks)]
    parts = crunch.map(sizes)
    return combine.submit(parts).result()


def main(chunks: int = 6, largest_mib: int = 24) -> int:
    """Run the flow once."""
    return memory_fanout(chunks=chunks, largest_mib=largest_mib)


if __name__ == "__main__":
    print(main(*[int(a) for a in sys.argv[1:3]]))
