"""A task function importable by mirror processes (no Prefect import): memory ~ 4 x input."""

from __future__ import annotations


def grow(rows: list[bytes]) -> int:
    """Hold four times the input's bytes for a moment; return the input's size."""
    size = sum(len(r) for r in rows)
    buffer = bytearray(4 * size)
    buffer[::4096] = b"\x01" * len(buffer[::4096])
    return size
