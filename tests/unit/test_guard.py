"""The memory guard stops a task that outgrows its allocation, as a container's OOM killer would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mirrorscale.guard import MemoryGuard, MemoryLimitExceeded, rise_usage, tree_usage


def grow(mib: int) -> list[bytearray]:
    """Allocate ``mib`` MiB in 1 MiB steps, pausing between them like real work does."""
    held = []
    for _ in range(mib):
        block = bytearray(1 << 20)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident, not just reserved
        held.append(block)
        time.sleep(0.005)  # Python code between steps: the guard's exception lands here
    return held


def test_tree_guard_raises_memory_error_in_the_task_thread() -> None:
    guard = MemoryGuard(tree_usage()() + (48 << 20)).start()
    try:
        with pytest.raises(MemoryLimitExceeded):
            grow(400)
    finally:
        guard.stop()
    assert guard.breached and guard.breach_bytes is not None and guard.breach_bytes > guard.limit_bytes
    assert "above its allocation of" in guard.describe()


def test_rise_guard_counts_growth_since_start_and_leaves_small_tasks_alone() -> None:
    guard = MemoryGuard(256 << 20, usage=rise_usage()).start()
    held = grow(16)
    guard.stop()
    assert not guard.breached and len(held) == 16
    guard = MemoryGuard(32 << 20, usage=rise_usage()).start()
    with pytest.raises(MemoryLimitExceeded):
        try:
            grow(300)
        finally:
            guard.stop()
    assert 32 << 20 < guard.breach_bytes < 300 << 20  # stopped on the way, not at the end


def test_guard_waits_while_the_growth_is_not_attributable() -> None:
    blame = threading.Event()
    guard = MemoryGuard(16 << 20, usage=rise_usage(), attributable=blame.is_set).start()
    held = grow(64)  # another task's growth, say: not ours to stop
    assert not guard.breached
    blame.set()
    with pytest.raises(MemoryLimitExceeded):
        try:
            while True:
                time.sleep(0.01)
        finally:
            guard.stop()
    assert guard.breached and len(held) == 64


def test_guard_kills_a_task_stuck_in_a_c_call(tmp_path: Path) -> None:
    """A C call never returns to Python: after the grace period the guard records, then SIGKILLs."""
    marker = tmp_path / "breach.json"
    code = textwrap.dedent(f"""
        import json, time
        from mirrorscale.guard import MemoryGuard, tree_usage
        def record(used):
            open({str(marker)!r}, "w").write(json.dumps({{"used": used}}))
        MemoryGuard(tree_usage()() + (32 << 20), grace_seconds=0.5, on_breach=record).start()
        block = b"x" * (128 << 20)   # one C call: over the limit when it returns
        time.sleep(30)               # another C call: the MemoryError cannot be delivered
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert json.loads(marker.read_text())["used"] > 128 << 20


def test_guard_kills_the_task_children_on_a_breach() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        guard = MemoryGuard(tree_usage()() + (48 << 20), kill_children=True).start()
        with pytest.raises(MemoryLimitExceeded):
            try:
                grow(400)
            finally:
                guard.stop()
        assert child.wait(timeout=10) == -9
    finally:
        child.kill()
