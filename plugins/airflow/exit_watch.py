"""Record a task the kernel's OOM killer SIGKILLed: a small watcher outside the task process.

A process killed by ``SIGKILL`` runs no more code, and Airflow 3.3 calls no
listener anywhere for it (the supervisor only logs "Likely out of memory"), so
the listener inside the task process cannot record such a run. At
``on_task_instance_running`` the listener therefore starts this watcher
(:func:`start`): a separate Python process, detached by a double fork so it is
neither in the task's process tree (the monitor and the memory guard never see
it) nor in its session. The two talk over a pipe, the watcher's stdin:

1. the listener sends one JSON line describing the run (ids, start, features,
   what was allocated);
2. on every terminal listener call (and before the memory guard kills the task,
   which records the run itself) it sends ``done`` and closes the pipe; the
   watcher exits without writing anything.

If the pipe reaches end-of-file (or the process is gone) without ``done``, the
task process ended without a terminal listener call. The watcher then asks the
kernel whether *it* killed the task for memory, and only then stores the trace,
with outcome ``oom_killed``:

=================================  ==============================================================
evidence                           when it counts
=================================  ==============================================================
the kernel log (``/dev/kmsg``)     a ``Killed process <pid>`` record logged after the watch began
                                   (exact; gives the RSS at the kill)
the memory cgroup's OOM counter    ``oom_kill`` in ``memory.oom_control`` (cgroup v1) or
                                   ``memory.events`` (v2) of the task's cgroup rose, and the
                                   kernel log (if readable) names no other victim. Exact when the
                                   task has a cgroup of its own (a container, a pod); in a shared
                                   cgroup a task that deferred while a neighbour was OOM-killed
                                   would be miscounted when the log cannot be read.
=================================  ==============================================================

Other endings without a terminal listener call (a deferred task, a sensor in
reschedule mode, a kill by hand) leave no trace, as before. The peak stored is
the largest of the task process's ``VmHWM`` (polled every 0.2 s) and the RSS the
kernel reported at the kill; CPU seconds are the last polled ``utime + stime``.

``MIRRORSCALE_AIRFLOW_EXIT_WATCH``: ``auto`` (default: in task processes forked
by Airflow's supervisor, not under ``airflow dags test``), ``1`` always, ``0`` never.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENV", "Watch", "start", "oom_kill_count", "kernel_oom_victims", "oom_evidence", "main"]

ENV = "MIRRORSCALE_AIRFLOW_EXIT_WATCH"
POLL_SECONDS = 0.2
TICKS = os.sysconf("SC_CLK_TCK")


class Watch:
    """The task process's end of the pipe to its watcher."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def describe(self, run: dict[str, Any]) -> None:
        """Send the run's description (JSON-able: ids, ``started_at``, features, allocated)."""
        if self._fd is not None:
            os.write(self._fd, (json.dumps(run, default=str) + "\n").encode())

    def done(self) -> None:
        """The listener recorded the run (or is about to): the watcher leaves without writing."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, b"done\n")
        finally:
            os.close(fd)


def start(pid: int | None = None) -> Watch:
    """Start a detached watcher of ``pid`` (this process by default); returns once it is detached."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(pid or os.getpid())], stdin=read_end,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                                start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    proc.wait(30)  # the first process forks the watcher and exits at once
    return Watch(write_end)


def _memory_cgroup(pid: int) -> Path | None:
    """The directory of ``pid``'s memory cgroup (v1 ``memory`` controller, else the v2 unified one)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return None


def oom_kill_count(cgroup: Path | None) -> int | None:
    """The cgroup's ``oom_kill`` counter (cgroup v1 ``memory.oom_control`` or v2 ``memory.events``)."""
    if cgroup is None:
        return None
    for name in ("memory.oom_control", "memory.events"):
        try:
            text = (cgroup / name).read_text()
        except OSError:
            continue
        found = re.search(r"^oom_kill (\d+)$", text, re.MULTILINE)
        if found:
            return int(found.group(1))
    return None


def _open_kmsg() -> int | None:
    """``/dev/kmsg`` positioned after its current end (None when it cannot be read)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        os.lseek(fd, 0, os.SEEK_END)
    except OSError:
        os.close(fd)
        return None
    return fd


_VICTIM = re.compile(r"Killed process (\d+) \(.*?anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB")


def kernel_oom_victims(fd: int, pid: int, wait_seconds: float = 1.0) -> dict[int, int]:
    """Processes the kernel log since ``fd``'s position says the OOM killer killed: ``{pid: rss_bytes}``.

    Waits up to ``wait_seconds`` for ``pid`` to show up (the log may trail the kill).
    """
    victims: dict[int, int] = {}
    deadline = time.monotonic() + wait_seconds
    while True:
        while True:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: records were overwritten while we read; go on with the next
                continue
            if not record:
                break
            found = _VICTIM.search(record)
            if found:
                victims[int(found.group(1))] = sum(int(v) for v in found.groups()[1:]) * 1024
        if pid in victims or time.monotonic() > deadline:
            return victims
        time.sleep(0.05)


@dataclass
class _Seen:
    """What the watcher measured of the task process while it lived."""

    first_rss: int = 0
    hwm: int = 0
    cpu_seconds: float = 0.0


def _poll(pid: int, seen: _Seen) -> bool:
    """Update ``seen`` from ``/proc``; False once the process is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    seen.cpu_seconds = (int(fields[11]) + int(fields[12])) / TICKS
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            seen.hwm = max(seen.hwm, int(line.split()[1]) * 1024)
        elif line.startswith("VmRSS:") and not seen.first_rss:
            seen.first_rss = int(line.split()[1]) * 1024
    return True


def _wait(pid: int, seen: _Seen) -> tuple[dict[str, Any] | None, bool]:
    """Read the pipe until ``done`` or the end; ``(run description, ended without done)``."""
    run: dict[str, Any] | None = None
    buffer = b""
    alive = True
    while alive:
        ready, _, _ = select.select([0], [], [], POLL_SECONDS)
        alive = _poll(pid, seen)
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return run, True
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line == b"done":
                return run, False
            run = json.loads(line)
    return run, True


def _record(pid: int, run: dict[str, Any], seen: _Seen, evidence: str, oom_rss: int | None) -> None:
    from datetime import datetime, timezone

    from mirrorscale.monitor import ResourceUsage
    from mirrorscale.plugins.airflow import listener

    started = datetime.fromisoformat(run["started_at"])
    ended = datetime.now(timezone.utc)
    peak = max(seen.hwm, oom_rss or 0)
    features = {**run.get("features", {}), "killed_by": "kernel-oom", "oom_evidence": evidence}
    if oom_rss is not None:
        features["oom_rss_bytes"] = oom_rss
    state = listener._Run(key=tuple(run["key"]), started_at=started, features=features,  # type: ignore[arg-type]
                          allocated=run.get("allocated", {}))
    usage = ResourceUsage(peak_rss_bytes=peak, baseline_rss_bytes=seen.first_rss, cpu_seconds=seen.cpu_seconds,
                          wall_seconds=(ended - started).total_seconds(), read_bytes=0, write_bytes=0, samples=(),
                          processes_seen=1, peak_source="kernel-oom-report" if peak == oom_rss else "hwm")
    listener._record(state, listener._trace_row(state, usage, ended, "oom_killed", None))


def oom_evidence(pid: int, victims: dict[int, int] | None, before: int | None, after: int | None) -> str:
    """Why ``pid`` counts as OOM-killed, or ``""``: the kernel log names it, or the cgroup counter rose.

    ``victims`` is None when the kernel log cannot be read. A rise of the
    counter does not count when the log names other victims but not ``pid``.
    """
    if victims is not None and pid in victims:
        return "kernel log"
    if before is None or after is None or after <= before:
        return ""
    if victims:
        return ""  # the log says whom the OOM killer took, and it was not this task
    return f"memory cgroup oom_kill {before} -> {after}"


def main(argv: list[str] | None = None) -> int:
    """``python -m mirrorscale.plugins.airflow.exit_watch PID`` with the pipe as stdin (see the module doc)."""
    pid = int((argv or sys.argv[1:])[0])
    if os.fork() > 0:
        return 0  # detach: the watcher lives on in the child, outside the task's process tree
    kmsg = _open_kmsg()
    cgroup = _memory_cgroup(pid)
    before = oom_kill_count(cgroup)
    seen = _Seen()
    run, ended_abruptly = _wait(pid, seen)
    if not ended_abruptly or run is None:
        return 0
    victims = None if kmsg is None else kernel_oom_victims(kmsg, pid)
    evidence = oom_evidence(pid, victims, before, oom_kill_count(cgroup))
    if evidence:
        _record(pid, run, seen, evidence, (victims or {}).get(pid))
    return 0


if __name__ == "__main__":
    os._exit(main())
