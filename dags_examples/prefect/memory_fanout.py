"""Memory-heavy fan-out: ``.map()`` over chunks whose memory differs a lot.

Each ``crunch`` holds ``FACTOR`` bytes of working memory per byte of its chunk for a
moment; ``combine`` adds the results. The per-chunk traces are what memory admission
sizes from: in mode ``enforce`` each chunk holds its own predicted need of the memory
limit, instead of the task's static ``default_memory``. Run it as::

    python dags_examples/prefect/memory_fanout.py                 # 6 chunks of 4..24 MiB
    python dags_examples/prefect/memory_fanout.py 8 64            # 8 chunks, largest 64 MiB
    python dags_examples/prefect/memory_fanout.py --mode enforce

With the default thread pool the chunks share one process, so their measured peaks
overlap; ``python -m mirrorscale.demo`` runs this flow on a process pool (one chunk per
worker at a time) with memory admission, like ``benchmarks/prefect_fanout.py``.
"""

from __future__ import annotations

import mmap
import time

from prefect import flow, task, unmapped

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

MiB = 1024 * 1024
FACTOR = 32
"""Bytes of working memory ``crunch`` holds per byte of its chunk."""


def chunk_sizes(chunks: int, largest_mib: int) -> list[int]:
    """Memory needs (MiB) of ``chunks`` chunks growing evenly up to ``largest_mib``."""
    return [max(1, largest_mib * (i + 1) // chunks) for i in range(chunks)]


@mirrorscale_policy(mode="recommend", default_memory="512MiB")  # sized for the largest chunk seen
@task
def crunch(chunk: bytes, hold_seconds: float = 0.2) -> int:
    """Hold ``FACTOR x len(chunk)`` bytes (every page touched) for ``hold_seconds``; return a checksum.

    The working memory is an anonymous mmap, returned to the system when the task
    ends (a small ``bytearray`` could stay in the heap of a reused worker process,
    hiding the next task's memory from its measured rise).
    """
    size = FACTOR * len(chunk)
    buffer = mmap.mmap(-1, size)
    try:
        for offset in range(0, size, 4096):  # touch every page so it is resident
            buffer[offset] = offset % 251
        deadline = time.monotonic() + hold_seconds
        while time.monotonic() < deadline:  # short sleeps: a memory guard's stop lands quickly
            time.sleep(0.05)
        return sum(buffer[::1 << 20])
    finally:
        buffer.close()


@task
def combine(parts: list[int]) -> int:
    """Add the chunk checksums."""
    return sum(parts)


@flow(name="memory-fanout", task_runner=PredictiveTaskRunner())
def memory_fanout(sizes_mib: list[int] | None = None, hold_seconds: float = 0.2) -> int:
    """Fan out one ``crunch`` per entry of ``sizes_mib`` (its working memory in MiB), then combine."""
    chunks = [bytes(max(1, mib * MiB // FACTOR)) for mib in (sizes_mib or chunk_sizes(6, 24))]
    parts = crunch.map(chunks, hold_seconds=unmapped(hold_seconds))
    return combine.submit(parts).result()


def main(chunks: int = 6, largest_mib: int = 24) -> int:
    """Run the flow once on ``chunks`` chunks growing up to ``largest_mib`` MiB."""
    return memory_fanout(sizes_mib=chunk_sizes(chunks, largest_mib))


if __name__ == "__main__":
    from _example_cli import parse  # noqa: I001 - beside this file; sets MIRRORSCALE_MODE from --mode

    args = parse(__doc__, ["chunks", "largest_mib"])
    import memory_fanout as example  # this file as a module (like the other examples)

    print(example.main(*args))
