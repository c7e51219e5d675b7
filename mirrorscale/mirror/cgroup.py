"""A cgroup v1 memory-controller child group per mirror, when the machine allows it.

Every function is best effort: :func:`create` returns None when there is no
writable v1 memory controller (no mount, no permission, cgroup v2 only), and
the sandbox then falls back to ``RLIMIT_AS`` and its RSS watchdog.
"""

from __future__ import annotations

import os
import signal
import uuid

__all__ = ["create", "join", "kill_all", "oom_killed", "remove", "set_limit_above_usage"]

_ROOT = "/sys/fs/cgroup/memory"


def _own_group() -> str | None:
    """The directory of this process's v1 memory cgroup, or None."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "memory" in controllers.split(","):
                    return os.path.join(_ROOT, path.lstrip("/"))
    except (OSError, ValueError):
        return None
    return None


def _write(group: str, name: str, value: object) -> bool:
    try:
        with open(os.path.join(group, name), "w") as fh:
            fh.write(str(value))
        return True
    except OSError:
        return False


def _read_int(group: str, name: str) -> int | None:
    try:
        with open(os.path.join(group, name)) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def create() -> str | None:
    """Make a child memory group below this process's own; None when impossible."""
    parent = _own_group()
    if parent is None or not os.path.isfile(os.path.join(parent, "memory.limit_in_bytes")):
        return None
    group = os.path.join(parent, f"mirrorscale-{uuid.uuid4().hex[:12]}")
    try:
        os.mkdir(group)
    except OSError:
        return None
    if not os.path.isfile(os.path.join(group, "memory.limit_in_bytes")):
        remove(group)
        return None
    return group


def join(group: str) -> bool:
    """Move the calling process into ``group``."""
    return _write(group, "cgroup.procs", os.getpid())


def set_limit_above_usage(group: str, cap: int) -> bool:
    """Limit ``group`` to its current usage plus ``cap`` bytes (swap included if accounted)."""
    usage = _read_int(group, "memory.usage_in_bytes")
    if usage is None:
        return False
    limit = usage + int(cap)
    if not _write(group, "memory.limit_in_bytes", limit):
        return False
    if os.path.exists(os.path.join(group, "memory.memsw.limit_in_bytes")):
        _write(group, "memory.memsw.limit_in_bytes", limit)
    return True


def oom_killed(group: str) -> bool:
    """True when the kernel OOM-killed a process of ``group`` (or it hit its limit)."""
    try:
        with open(os.path.join(group, "memory.oom_control")) as fh:
            for line in fh:
                if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                    return True
    except (OSError, ValueError):
        pass
    return bool(_read_int(group, "memory.failcnt"))


def kill_all(group: str) -> None:
    """SIGKILL every process still in ``group``."""
    try:
        with open(os.path.join(group, "cgroup.procs")) as fh:
            pids = [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def remove(group: str) -> None:
    """Delete ``group`` (killing what is left in it first)."""
    kill_all(group)
    for _ in range(50):
        try:
            os.rmdir(group)
            return
        except FileNotFoundError:
            return
        except OSError:
            import time

            time.sleep(0.02)
