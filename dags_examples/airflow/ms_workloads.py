"""Task callables of the example DAGs that a mirror can import in a fresh process.

A mirror (:func:`mirrorscale.mirror.mirror_task`) runs a task's own callable in
a separate process, so the callable must live in an importable module, not
inside a DAG file (Airflow loads DAG files under a mangled module name). This
module sits next to the DAGs; Airflow puts the DAGs folder on ``sys.path``.
No Airflow imports here: a mirror stays cheap.
"""

from __future__ import annotations

import os
import time

EXPANSION = 1000
"""Bytes :func:`crunch` holds in memory per byte of its input."""


def make_text(kib: int) -> str:
    """``kib`` KiB of text (the upstream's output)."""
    line = "the quick brown fox jumps over the lazy dog\n"
    return (line * ((int(kib) << 10) // len(line) + 1))[: int(kib) << 10]


def crunch(text: str) -> int:
    """Expand ``text`` ``EXPANSION`` times in memory (touching every page) and return the bytes held.

    Its peak follows its input linearly, so a mirror on a few percent of the
    text predicts the full run.
    """
    block = bytearray(len(text) * EXPANSION)
    block[::4096] = b"\x01" * len(range(0, len(block), 4096))
    return len(block)


def hold(release_file: str | None, max_seconds: float) -> float:
    """Wait until ``release_file`` exists or ``max_seconds`` passed; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < float(max_seconds):
        if release_file and os.path.exists(release_file):
            break
        time.sleep(0.2)
    return round(time.monotonic() - started, 2)


__all__ = ["EXPANSION", "crunch", "hold", "make_text"]
