"""Process-tree resource monitor: peak RSS, CPU seconds, wall time and I/O of a task.

Two ways to use it::

    with ProcessMonitor() as monitor:          # code in this process (and its children)
        run_task()
    monitor.usage.peak_rss_increase_bytes

    proc = subprocess.Popen([...])
    usage = watch_pid(proc.pid).wait(popen=proc)   # another process tree, until it exits

A sampling thread reads the tree every ``interval`` seconds. Sampling alone misses
short spikes (a thread in the measured process cannot run while a C call holds the
GIL), so the monitor also reads the kernel's own high-water marks; see
:attr:`ResourceUsage.peak_rss_bytes` for the exact rule.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass

import psutil

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_MAX_SAMPLES", "ProcessMonitor", "ResourceSample",
           "ResourceUsage", "reset_peak_rss", "watch_pid"]

DEFAULT_INTERVAL = 0.1
"""Seconds between two samples; about 0.1 % of one core for a small tree (see benchmarks)."""
DEFAULT_MAX_SAMPLES = 512
"""Samples kept per run; longer runs are downsampled by halving the resolution."""

_PROC = "/proc"
_RU_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
_BLOCK = 512  # ru_inblock / ru_oublock unit on Linux
_ACTIVE: weakref.WeakSet[ProcessMonitor] = weakref.WeakSet()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResourceSample:
    """One point of a run: seconds since start, tree RSS, cumulative tree CPU seconds.

    After downsampling one sample stands for several ticks: it keeps the largest
    RSS among them and the time and CPU of the last one.
    """

    t_seconds: float
    rss_bytes: int
    cpu_seconds: float


@dataclass(frozen=True)
class ResourceUsage:
    """What a monitored run used.

    ``peak_rss_bytes`` is the largest of three lower bounds of the true tree peak
    (the largest RSS *sum* of the tree over time):

    1. ``sampled``: the largest RSS sum of the live tree at one sample;
    2. ``hwm``: the largest single-process kernel high-water mark (``VmHWM``) read
       during the run, counted only if it lies inside the run: the monitor resets it
       with ``clear_refs`` at start (if that fails, only a rise above its start value
       counts); processes born during the run count from birth;
    3. ``rusage``: ``ru_maxrss`` from ``getrusage`` in own-process mode (self if it
       rose during the run; waited children) or from ``wait4`` of the watched root
       (:meth:`ProcessMonitor.wait` with ``popen``; it covers waited descendants).
       A child's value counts only above this process's own ``VmHWM`` at start: a
       child inherits its parent's RSS (fork) or even high-water mark (vfork,
       ``posix_spawn``) into ``ru_maxrss`` at ``exec``.

    High-water marks of different processes are never added up: they need not be
    simultaneous. So the peak is low when several processes spike together between
    two samples, or a descendant of a watched process lives and dies between two
    samples. ``peak_source`` names the bound that won; ``sampled_peak_rss_bytes``
    is bound 1 alone.

    ``cpu_seconds`` is user + system time of the tree during the run, including
    descendants that exited and were waited for (their parent's ``cutime``); in
    own-process mode the monitor's own CPU (``monitor_cpu_seconds``) is subtracted.
    I/O fields are ``/proc/<pid>/io`` deltas summed over every process seen, up to
    its last sample.
    """

    peak_rss_bytes: int
    baseline_rss_bytes: int
    cpu_seconds: float
    wall_seconds: float
    read_bytes: int
    write_bytes: int
    samples: tuple[ResourceSample, ...]
    processes_seen: int
    read_chars: int = 0
    write_chars: int = 0
    sampled_peak_rss_bytes: int = 0
    peak_source: str = "sampled"
    monitor_cpu_seconds: float = 0.0

    @property
    def peak_rss_increase_bytes(self) -> int:
        """Peak RSS above the RSS just before the measured code started (never negative)."""
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)


def _read_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in bytes; ``{}`` when the file is unreadable."""
    found: dict[str, int] = {}
    try:
        with open(f"{_PROC}/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith((b"VmRSS:", b"VmHWM:")):
                    key, value = line.split(b":", 1)
                    found[key.decode()] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel high-water mark (``VmHWM``) of ``pid`` to its current RSS.

    Writes ``5`` to ``/proc/<pid>/clear_refs`` (Linux; needs ptrace rights on the
    process). Running monitors of this module first take note of the old mark, so a
    nested monitor does not hide a spike from an outer one. Returns False when the
    reset is not possible.
    """
    before = _read_status(pid).get("VmHWM")
    if before is not None:
        with _ACTIVE_LOCK:
            monitors = list(_ACTIVE)
        for monitor in monitors:
            monitor._note_hwm(pid, before)
    try:
        with open(f"{_PROC}/{pid}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), read from ``/proc``."""
    children: list[int] = []
    try:
        tids = os.listdir(f"{_PROC}/{pid}/task")
    except OSError:
        return children
    for tid in tids:
        try:
            with open(f"{_PROC}/{pid}/task/{tid}/children", "rb") as fh:
                children.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return children


def _tree_pids(root: int, include_children: bool, fast: bool) -> list[int]:
    """``root`` and its descendants, every parent listed before its children."""
    if not include_children:
        return [root]
    if not fast:
        try:
            return [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            return [root]
    pids, seen, i = [root], {root}, 0
    while i < len(pids):
        for child in _child_pids(pids[i]):
            if child not in seen:
                seen.add(child)
                pids.append(child)
        i += 1
    return pids


def _read_io(proc: psutil.Process, last: tuple[int, ...]) -> tuple[int, ...]:
    """(read_bytes, write_bytes, read_chars, write_chars) of ``proc``, or ``last``."""
    try:
        io = proc.io_counters()
    except (psutil.Error, AttributeError, NotImplementedError, OSError):
        return last
    return (io.read_bytes, io.write_bytes, getattr(io, "read_chars", 0), getattr(io, "write_chars", 0))


def _cpu_total(times: object) -> float:
    """User + system seconds of a process plus those of its waited children."""
    names = ("user", "system", "children_user", "children_system")
    return sum(getattr(times, name, 0.0) for name in names)


def _add(a: tuple[int, ...], b: tuple[int, ...], c: tuple[int, ...]) -> tuple[int, ...]:
    """Element-wise ``a + b - c``."""
    return tuple(x + y - z for x, y, z in zip(a, b, c))


@dataclass(slots=True)
class _Tracked:
    """Per-process state: the window-start values and the last values read."""

    proc: psutil.Process
    hwm_floor: int = -1  # VmHWM at or below this may predate the window
    cpu0: float = 0.0
    io0: tuple[int, ...] = (0, 0, 0, 0)
    cpu: float = 0.0
    io: tuple[int, ...] = (0, 0, 0, 0)
    ppid: int = 0


class _SampleBuffer:
    """At most ``limit`` samples: when full, merge neighbours and halve the resolution."""

    def __init__(self, limit: int) -> None:
        self._limit, self._stride, self._count = limit, 1, 0
        self._kept: list[ResourceSample] = []
        self._pending: ResourceSample | None = None

    @staticmethod
    def _merge(a: ResourceSample, b: ResourceSample) -> ResourceSample:
        return ResourceSample(b.t_seconds, max(a.rss_bytes, b.rss_bytes), b.cpu_seconds)

    def add(self, sample: ResourceSample) -> None:
        """Add one tick; it joins the open bucket of ``stride`` ticks."""
        self._pending = sample if self._pending is None else self._merge(self._pending, sample)
        self._count += 1
        if self._count >= self._stride:
            self._flush()

    def _flush(self) -> None:
        if self._pending is None:
            return
        if len(self._kept) >= self._limit:
            kept = self._kept
            pairs = range(0, len(kept) - 1, 2)
            self._kept = [self._merge(kept[i], kept[i + 1]) for i in pairs] + kept[len(kept) // 2 * 2 :]
            self._stride *= 2
        self._kept.append(self._pending)
        self._pending, self._count = None, 0

    def freeze(self) -> tuple[ResourceSample, ...]:
        """All samples, the open bucket included."""
        self._flush()
        return tuple(self._kept)


class ProcessMonitor:
    """Measure a process tree: this process (``pid=None``) or another one.

    Own-process mode measures the code between :meth:`start` and :meth:`stop` (or
    the ``with`` block); its children are included. Watch mode follows ``pid`` and
    its descendants until ``pid`` exits or :meth:`stop` is called. Processes that
    vanish or deny access are skipped. See :class:`ResourceUsage` for the rules.
    """

    def __init__(self, pid: int | None = None, *, interval: float = DEFAULT_INTERVAL,
                 max_samples: int = DEFAULT_MAX_SAMPLES, include_children: bool = True) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if max_samples < 2:
            raise ValueError("max_samples must be at least 2")
        self.pid = os.getpid() if pid is None else int(pid)
        self.interval = interval
        self.max_samples = max_samples
        self.include_children = include_children
        self.usage: ResourceUsage | None = None
        self._own = self.pid == os.getpid()
        me = os.getpid()  # /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN:
        self._fast = os.path.exists(f"{_PROC}/{me}/task/{me}/children")
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer = _SampleBuffer(max_samples)
        self._tracked: dict[int, _Tracked] = {}
        self._t0: float | None = None
        self._exit_time: float | None = None
        self._seen = self._baseline = self._sampled_peak = self._hwm_peak = 0
        self._cpu = self._cpu_credit = self._overhead = 0.0
        self._io_done: tuple[int, ...] = (0, 0, 0, 0)
        self._root0: _Tracked | None = None
        self._ru_floor: dict[int, int] = {}  # own mode: getrusage ru_maxrss must rise above
        self._spawner_hwm = 0  # a child's ru_maxrss at or below this may be our own memory
        self._ru_child: object | None = None

    def start(self) -> ProcessMonitor:
        """Reset high-water marks, read the baseline and start sampling; returns self."""
        if self._t0 is not None:
            raise RuntimeError("monitor already started")
        psutil.Process(self.pid)  # psutil.NoSuchProcess for a pid that is gone
        self._t0 = time.perf_counter()
        self._set_rusage_floors()
        for pid in _tree_pids(self.pid, self.include_children, self._fast):
            reset_ok = reset_peak_rss(pid)
            tracked = self._adopt(pid)
            if tracked is not None and not reset_ok:
                tracked.hwm_floor = _read_status(pid).get("VmHWM", 0)
        self._read_baseline()
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        self._thread = threading.Thread(target=self._run, name="mirrorscale-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> ResourceUsage:
        """Stop sampling, take a last reading and return (and keep in ``usage``) the result."""
        if self.usage is not None:
            return self.usage
        if self._t0 is None:
            raise RuntimeError("monitor was not started")
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
        if self._exit_time is None:
            self._scan()
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self)
        self.usage = self._build_usage(self._exit_time or time.perf_counter())
        return self.usage

    def wait(self, timeout: float | None = None, *, popen: object | None = None) -> ResourceUsage:
        """Watch mode: block until the watched process exits, then :meth:`stop`.

        With ``popen`` (the ``subprocess.Popen`` of the watched child) the child is
        reaped here with ``os.wait4``; its kernel totals (CPU, ``ru_maxrss``, blocks)
        then complete the samples and ``popen.returncode`` is set. ``ru_maxrss``
        counts only above this process's ``VmHWM`` at start, so call
        ``reset_peak_rss(os.getpid())`` before spawning: else a child that spikes and
        exits within one interval can be missed. Raises ``TimeoutError`` when the
        process still runs after ``timeout`` seconds.
        """
        if self._own or self._thread is None:
            raise RuntimeError("wait() needs a started monitor on another pid")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"process {self.pid} still running after {timeout} s")
        if popen is not None and getattr(popen, "returncode", 0) is None:
            self._reap(popen)
        return self.stop()

    def __enter__(self) -> ProcessMonitor:
        """Start measuring the code in the ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop; the result is in ``usage``. Exceptions propagate."""
        self.stop()

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._scan()
            if self._exit_time is not None:
                return

    def _adopt(self, pid: int) -> _Tracked | None:
        try:
            tracked = _Tracked(psutil.Process(pid))
        except psutil.Error:
            return None
        self._tracked[pid] = tracked
        self._seen += 1
        return tracked

    def _read(self, tracked: _Tracked) -> tuple[int, bool] | None:
        """Read one process; returns (rss, is_zombie) or None when it is gone."""
        proc = tracked.proc
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                tracked.ppid = proc.ppid()
                zombie = proc.status() == psutil.STATUS_ZOMBIE
                status = _read_status(proc.pid)
                rss = status.get("VmRSS", 0) if status or zombie else proc.memory_info().rss
        except (psutil.Error, OSError):
            return None
        tracked.cpu = _cpu_total(times)
        tracked.io = _read_io(proc, tracked.io)
        hwm = status.get("VmHWM", 0)
        if hwm > tracked.hwm_floor:
            self._hwm_peak = max(self._hwm_peak, hwm)
        return rss, zombie

    def _read_baseline(self) -> None:
        with self._lock:
            for pid, tracked in list(self._tracked.items()):
                got = self._read(tracked)
                if got is None:
                    del self._tracked[pid]
                    continue
                tracked.cpu0, tracked.io0 = tracked.cpu, tracked.io
                self._baseline += got[0]
            self._root0 = self._tracked.get(self.pid)
            self._sampled_peak = self._baseline
            self._buffer.add(ResourceSample(0.0, self._baseline, 0.0))

    def _scan(self) -> None:
        started = time.thread_time()
        with self._lock:
            self._scan_locked()
            self._overhead += time.thread_time() - started

    def _scan_locked(self) -> None:
        now = time.perf_counter()
        pids = _tree_pids(self.pid, self.include_children, self._fast)
        listed = set(pids)
        pids += [pid for pid in self._tracked if pid not in listed]  # keep following orphans
        rss_total, alive, root_alive = 0, set(), False
        for pid in pids:
            tracked = self._tracked.get(pid) or self._adopt(pid)
            got = None if tracked is None else self._read(tracked)
            if got is None:
                continue
            alive.add(pid)
            rss_total += got[0]
            root_alive = root_alive or (pid == self.pid and not got[1])
        self._retire([pid for pid in self._tracked if pid not in alive])
        live_cpu = sum(t.cpu - t.cpu0 for t in self._tracked.values())
        self._cpu = max(self._cpu, live_cpu + self._cpu_credit)
        self._sampled_peak = max(self._sampled_peak, rss_total)
        self._buffer.add(ResourceSample(now - (self._t0 or now), rss_total, self._cpu_seconds()))
        if not root_alive and self._exit_time is None:
            self._exit_time = now

    def _retire(self, gone: list[int]) -> None:
        """Drop vanished processes, keeping their I/O and, unless a tracked parent
        absorbed it into its ``cutime`` by waiting, their CPU."""
        known = set(self._tracked)
        for pid in gone:
            tracked = self._tracked.pop(pid)
            self._io_done = _add(self._io_done, tracked.io, tracked.io0)
            if pid == self.pid or tracked.ppid not in known:
                self._cpu_credit += tracked.cpu - tracked.cpu0

    def _note_hwm(self, pid: int, hwm: int) -> None:
        """Another monitor is about to reset ``pid``'s high-water mark of ``hwm`` bytes."""
        with self._lock:
            tracked = self._tracked.get(pid)
            if tracked is not None and hwm > tracked.hwm_floor:
                self._hwm_peak = max(self._hwm_peak, hwm)

    @staticmethod
    def _own_rusage() -> dict[int, int]:
        if resource is None:
            return {}
        whos = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        return {who: resource.getrusage(who).ru_maxrss * _RU_MAXRSS_UNIT for who in whos}

    def _set_rusage_floors(self) -> None:
        """Before any reset: the values ``ru_maxrss`` must beat to count (see ResourceUsage)."""
        ru0, own_hwm = self._own_rusage(), _read_status(os.getpid()).get("VmHWM")
        self._spawner_hwm = own_hwm if own_hwm is not None else max(ru0.values(), default=0)
        if self._own and resource is not None:
            children = max(ru0[resource.RUSAGE_CHILDREN], self._spawner_hwm)
            self._ru_floor = {resource.RUSAGE_SELF: ru0[resource.RUSAGE_SELF], resource.RUSAGE_CHILDREN: children}

    def _reap(self, popen: object) -> None:
        try:
            _, status, rusage = os.wait4(popen.pid, 0)  # type: ignore[attr-defined]
        except ChildProcessError:
            return
        popen.returncode = os.waitstatus_to_exitcode(status)  # type: ignore[attr-defined]
        self._ru_child = rusage

    def _cpu_seconds(self) -> float:
        return max(0.0, self._cpu - (self._overhead if self._own else 0.0))

    def _peak(self) -> tuple[int, str]:
        bounds = [(self._sampled_peak, "sampled"), (self._hwm_peak, "hwm")]
        ru_now = self._own_rusage() if self._ru_floor else {}
        bounds += [(value, "rusage") for who, value in ru_now.items() if value > self._ru_floor.get(who, value)]
        child, root0 = self._ru_child, self._root0
        if child is not None and root0 is not None:
            value = child.ru_maxrss * _RU_MAXRSS_UNIT  # type: ignore[attr-defined]
            if value > max(root0.hwm_floor, self._spawner_hwm):
                bounds.append((value, "rusage"))
        return max(bounds, key=lambda bound: bound[0])

    def _with_wait4_totals(self, cpu: float, io: tuple[int, ...]) -> tuple[float, tuple[int, ...]]:
        """Raise CPU and block I/O to the ``wait4`` totals of the reaped root (since start)."""
        ru, root0 = self._ru_child, self._root0
        ru_cpu = ru.ru_utime + ru.ru_stime - root0.cpu0  # type: ignore[union-attr]
        ru_read = ru.ru_inblock * _BLOCK - root0.io0[0]  # type: ignore[union-attr]
        ru_write = ru.ru_oublock * _BLOCK - root0.io0[1]  # type: ignore[union-attr]
        return max(cpu, ru_cpu), (max(io[0], ru_read), max(io[1], ru_write), *io[2:])

    def _build_usage(self, end: float) -> ResourceUsage:
        with self._lock:
            io = self._io_done
            for tracked in self._tracked.values():
                io = _add(io, tracked.io, tracked.io0)
            cpu = self._cpu_seconds()
            if self._ru_child is not None and self._root0 is not None:
                cpu, io = self._with_wait4_totals(cpu, io)
            peak, source = self._peak()
            return ResourceUsage(
                peak_rss_bytes=peak, baseline_rss_bytes=self._baseline, cpu_seconds=cpu,
                wall_seconds=end - (self._t0 or end), read_bytes=io[0], write_bytes=io[1],
                samples=self._buffer.freeze(), processes_seen=self._seen, read_chars=io[2],
                write_chars=io[3], sampled_peak_rss_bytes=self._sampled_peak, peak_source=source,
                monitor_cpu_seconds=self._overhead,
            )


def watch_pid(pid: int, *, interval: float = DEFAULT_INTERVAL, max_samples: int = DEFAULT_MAX_SAMPLES,
              include_children: bool = True) -> ProcessMonitor:
    """Start and return a monitor on another process tree (``psutil.NoSuchProcess`` if gone)."""
    options = {"interval": interval, "max_samples": max_samples, "include_children": include_children}
    return ProcessMonitor(pid, **options).start()
