"""The sandbox a mirror runs in: a separate, capped, niced, time-limited process.

:func:`run_sandboxed` starts ``fn`` in a child process (``forkserver`` on Linux,
``spawn`` elsewhere; ``fn`` must be an importable module-level callable) and
returns a :class:`SandboxResult`; it never raises for what the callable does.
Inside the child:

* ``MIRRORSCALE_MIRROR=1`` (so :func:`is_mirror` is true) and
  ``MIRRORSCALE_SCRATCH_DIR`` name a scratch directory, which is also the working
  directory: relative writes land there, not in production outputs;
* the CPU niceness is raised (``os.nice``) so the mirror cannot starve the primary;
* the call is measured by :class:`~mirrorscale.monitor.ProcessMonitor`, started
  right before the call (it resets ``VmHWM``), so the peak is the RSS *increase*
  the call causes above the process's RSS just before it; its wall time is
  timed around the call alone;
* with ``scale`` (the share of the real input the sample holds) the call's
  memory allocator and garbage collector behave as they would on the full input
  (:func:`mimic_full_scale`), so what grows with the input is measured the way
  the full run will pay it.

The memory cap limits that increase, enforced by every layer available:

============  ===========================================================
layer         effect when the call grows more than ``memory_cap`` bytes
============  ===========================================================
``cgroup``    a cgroup v1 child group whose limit is usage + cap: the kernel
              OOM-kills the mirror (like a container)
``rlimit``    only without a cgroup: ``RLIMIT_AS`` = VmSize + cap, large
              allocations raise ``MemoryError``
``watchdog``  the parent samples the tree's RSS and SIGKILLs it above the cap
============  ===========================================================

A timeout SIGKILLs the whole process group. Outcomes are ``ok``,
``memory_cap``, ``timeout`` or ``error`` (the message of what the call raised).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mirrorscale.mirror import cgroup
from mirrorscale.mirror.transport import pack, unpack

__all__ = ["MIRROR_ENV", "SCRATCH_ENV", "CallCost", "SandboxResult", "callable_reference", "is_mirror",
           "forkserver_usage", "mimic_full_scale", "run_sandboxed", "scratch_dir", "task_imports", "warm_up_seconds"]

MIRROR_ENV = "MIRRORSCALE_MIRROR"
"""Set to ``1`` inside a mirror."""
SCRATCH_ENV = "MIRRORSCALE_SCRATCH_DIR"
"""The mirror's scratch directory (also its working directory)."""
PRELOAD_ENV = "MIRRORSCALE_MIRROR_PRELOAD"
"""Comma-separated modules the warm forkserver imports, in order (errors ignored)."""
SYS_PATH_ENV = "MIRRORSCALE_MIRROR_SYS_PATH"
"""This process's ``sys.path`` when the warm forkserver started (the forkserver itself ignores it)."""

_WATCH_INTERVAL = 0.05
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling of its dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
_MMAP_THRESHOLD_MIN = 64 * 2**10
_GC_THRESHOLD_MIN = 10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_PRELOAD_CANDIDATES = ("numpy", "pandas", "scipy", "sklearn", "pyarrow")
_log = logging.getLogger(__name__)
_context: Any = None
_preloaded: set[str] = set()
_learned: dict[str, set[str]] = {}  # reference -> modules its calls imported
_warm_cpu = 0.0


def is_mirror() -> bool:
    """True inside a mirror run: task code can skip writes to production outputs."""
    return os.environ.get(MIRROR_ENV) == "1"


def scratch_dir() -> Path | None:
    """The mirror's scratch directory, or None outside a mirror."""
    value = os.environ.get(SCRATCH_ENV)
    return Path(value) if value and is_mirror() else None


def callable_reference(fn: Callable[..., Any] | str) -> str:
    """``"module:qualname"`` of an importable module-level callable (or the string itself)."""
    if isinstance(fn, str):
        if ":" not in fn:
            raise ValueError(f"callable reference must look like 'module:function', got {fn!r}")
        return fn
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not qualname:
        raise ValueError(f"{fn!r} is not an importable module-level callable; a mirror imports it in a new process")
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class CallCost:
    """What the call itself cost, measured inside the child around the call.

    ``runqueue_wait_seconds`` is how long the call's threads (the calling thread
    and any it started, e.g. BLAS workers; not the monitor's) were runnable but
    waiting for a CPU, summed over threads (``/proc/self/task/*/schedstat``
    ``run_delay``): a niced mirror on a busy machine waits a lot, and
    extrapolation uses the wall time without it. ``imported`` names the modules
    the call imported itself (their import cost is in ``cpu_seconds``; the next
    mirror preloads them).
    """

    peak_rss_increase_bytes: int
    baseline_rss_bytes: int
    cpu_seconds: float
    wall_seconds: float
    read_bytes: int = 0
    write_bytes: int = 0
    runqueue_wait_seconds: float = 0.0
    threads: int = 1
    imported: tuple[str, ...] = ()

    @property
    def uncontended_wall_seconds(self) -> float:
        """Wall time minus the time the call's threads waited for a CPU (niceness, other load).

        The summed wait of parallel threads can exceed what the call was delayed,
        so the result never drops below the CPU time spread over the threads that
        ran (``cpu / threads``), nor below zero.
        """
        floor = self.cpu_seconds / max(1, self.threads)
        return min(self.wall_seconds, max(floor, self.wall_seconds - self.runqueue_wait_seconds))


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed run.

    ``call`` is measured around the call (None when the child died before it
    finished); ``process_*`` is what the whole child process cost the machine:
    fork, receiving and unpickling the input, resolving ``fn``, the monitor and
    the call (the warm forkserver's one-time imports are not in it; see
    :func:`warm_up_seconds`). ``enforcement`` names the memory-cap layers in place.
    """

    outcome: str
    error: str | None
    call: CallCost | None
    process_peak_rss_bytes: int
    process_cpu_seconds: float
    process_wall_seconds: float
    exitcode: int | None
    enforcement: tuple[str, ...] = field(default=())


def _status_bytes(key: str, pid: int | str = "self") -> int:
    """``key`` (e.g. ``VmRSS``) of ``/proc/<pid>/status`` in bytes, 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _precise_cpu() -> float:
    """CPU seconds of this process (all threads, ns resolution) plus its waited children."""
    children = 0.0
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = ru.ru_utime + ru.ru_stime
    except ImportError:
        pass
    return time.process_time() + children


def _release_free_heap() -> None:
    """Give freed heap back to the OS (glibc ``malloc_trim``) before the baseline is read.

    Unpickling the input leaves its buffers freed but resident; without this the
    call would reuse them and its RSS increase would read too low, by an amount
    that depends on how the input arrived rather than on the call.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _thread_waits() -> dict[int, float]:
    """Seconds each thread of this process has spent runnable but waiting for a CPU ({} if unknown)."""
    waits: dict[int, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return waits
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as fh:
                waits[int(tid)] = int(fh.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return waits


def _call_wait(before: dict[int, float], after: dict[int, float], skip: set[int]) -> tuple[float, int]:
    """Run-queue wait of the call's threads between two readings, and how many threads ran.

    Threads that ended during the call are lost (their wait is unknown).
    """
    tids = [tid for tid in after if tid not in skip]
    wait = sum(max(0.0, after[tid] - before.get(tid, 0.0)) for tid in tids)
    return wait, max(1, len(tids))


def _new_modules(before: set[str]) -> tuple[str, ...]:
    """Public modules imported since ``before`` (what a call imported itself)."""
    return tuple(sorted(m for m in set(sys.modules) - before
                        if not any(part.startswith("_") for part in m.split(".")) and sys.modules.get(m)))


def _resolve(reference: str) -> Callable[..., Any]:
    import importlib

    module, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def mimic_full_scale(scale: float | None) -> dict[str, int]:
    """Make this process's allocator and collector treat a sample as the full input would be treated.

    Two costs of a call grow faster than its input unless the sample is scaled
    the same way, and both are set by absolute thresholds that a 5 % sample
    never reaches:

    * **page faults.** glibc maps a block of its own once it exceeds the dynamic
      mmap threshold (at most 32 MiB) and unmaps it on free, so every big array
      of a full run is fresh memory the kernel must fault in and zero; the same
      arrays of a sample are small enough to be recycled inside the heap and are
      never faulted again. The mirror fixes the threshold at ``scale * 32 MiB``:
      a block is mapped fresh exactly when its full-size counterpart would be.
    * **garbage collection.** CPython's collector runs after every 700 new
      container objects and scans the whole heap only when it grew by a quarter;
      a sample builds too few objects to reach the first full collection, the
      full run pays several over a large heap. The mirror scales the first
      threshold by ``scale`` (at least 10), so it runs the same schedule of
      collections, each over ``scale`` of the objects.

    Returns the settings made (empty when ``scale`` is None or >= 1).
    """
    import gc

    if scale is None or not 0 < scale < 1:
        return {}
    done: dict[str, int] = {}
    first, *rest = gc.get_threshold()
    if first:
        done["gc_threshold"] = max(_GC_THRESHOLD_MIN, round(first * scale))
        gc.set_threshold(done["gc_threshold"], *rest)
    mmap_threshold = max(_MMAP_THRESHOLD_MIN, int(_MMAP_THRESHOLD_MAX * scale))
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and libc.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold):
            done["mmap_threshold"] = mmap_threshold
    except (OSError, AttributeError):  # not glibc: only the collector is scaled
        pass
    return done


def _limit_child(options: dict[str, Any]) -> tuple[str, ...]:
    """Apply the in-child memory layers right before the call; return their names."""
    cap, group = options.get("memory_cap"), options.get("cgroup")
    if not cap:
        return ()
    if group and cgroup.set_limit_above_usage(group, cap):
        return ("cgroup",)
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = _status_bytes("VmSize") + cap
        resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        return ("rlimit",)
    except (ImportError, ValueError, OSError):
        return ()


def _enter_sandbox(options: dict[str, Any]) -> None:
    """Process-wide settings of the child: own process group, cgroup, niceness, env, cwd."""
    os.setpgid(0, 0)
    if options.get("cgroup"):
        cgroup.join(options["cgroup"])
    if options.get("niceness"):
        os.nice(options["niceness"])
    if options.get("mirror", True):
        os.environ[MIRROR_ENV] = "1"
    os.environ[SCRATCH_ENV] = options["scratch"]
    os.chdir(options["scratch"])


def _child_main(conn: Any, reference: str, payload: list[bytes], options: dict[str, Any]) -> None:
    """Entry point of the child: set up, call, measure, report over ``conn``."""
    import gc

    from mirrorscale.monitor import ProcessMonitor

    _enter_sandbox(options)
    step = f"cannot import {reference}"
    try:
        fn = _resolve(reference)
        step = "cannot unpickle the input in the mirror"
        args, kwargs = unpack(payload)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("done", "error", f"{step}: {type(exc).__name__}: {exc}", None, 0, _precise_cpu()))
        return
    mimic_full_scale(options.get("scale"))
    gc.collect()
    _release_free_heap()
    layers = _limit_child(options)
    pre_call_hwm = _status_bytes("VmHWM")
    modules0 = set(sys.modules)
    monitor = ProcessMonitor(interval=options.get("interval", 0.1)).start()
    skip = {monitor._thread.native_id} if monitor._thread is not None else set()
    conn.send(("ready", _status_bytes("VmRSS"), layers))
    wait0 = _thread_waits()
    outcome, error = "ok", None
    cpu0, started = _precise_cpu(), time.perf_counter()
    try:
        fn(*args, **kwargs)
    except MemoryError as exc:
        outcome, error = "memory_cap", f"MemoryError: {exc}"
    except BaseException as exc:  # noqa: BLE001 - a mirror never propagates
        outcome, error = "error", f"{type(exc).__name__}: {exc}"
    wall, cpu = time.perf_counter() - started, _precise_cpu() - cpu0
    wait, threads = _call_wait(wait0, _thread_waits(), skip)
    usage = monitor.stop()
    cpu = max(cpu - usage.monitor_cpu_seconds, usage.cpu_seconds)  # the monitor also sees unwaited children
    cost = CallCost(usage.peak_rss_increase_bytes, usage.baseline_rss_bytes, cpu, wall,
                    usage.read_bytes, usage.write_bytes, min(wait, wall), threads,
                    _new_modules(modules0))
    conn.send(("done", outcome, error, cost, max(pre_call_hwm, usage.peak_rss_bytes), _precise_cpu()))


def task_imports(reference: str) -> tuple[str, ...]:
    """The modules a mirror of ``reference`` needs loaded before its call is measured.

    The callable's own module, the modules its code imports lazily (``import``
    statements inside the function, found in its bytecode, nested functions
    included) and those earlier mirrors of it were seen importing during the call.
    """
    import dis
    import importlib

    module, _, qualname = reference.partition(":")
    found = [module, *sorted(_learned.get(reference, ()))]
    try:
        target: Any = importlib.import_module(module) if module in sys.modules else None
        for part in qualname.split(".") if target is not None else ():
            target = getattr(target, part)
        code = getattr(getattr(target, "__func__", target), "__code__", None)
    except (ImportError, AttributeError):
        code = None
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname == "IMPORT_NAME" and isinstance(instruction.argval, str):
                found.append(instruction.argval)
        stack.extend(c for c in current.co_consts if hasattr(c, "co_code"))
    return tuple(dict.fromkeys(found))


def warm_up_seconds() -> float:
    """CPU seconds the warm forkserver(s) of this process have used: their imports, once, and forking mirrors."""
    return _warm_cpu + forkserver_usage()[1]


def forkserver_usage() -> tuple[int | None, float]:
    """``(pid, CPU seconds)`` of the warm forkserver running now (``(None, 0.0)`` when none runs).

    Two readings with the same pid tell what forking mirrors cost it in between.
    """
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None:
        return None, 0.0
    try:  # nanoseconds on the CPU (the server has one thread); cpu_times counts in 10 ms ticks
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            return pid, int(fh.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        times = psutil.Process(pid).cpu_times()
        return pid, times.user + times.system
    except psutil.Error:
        return None, 0.0


def _get_context(modules: tuple[str, ...]) -> Any:
    """The multiprocessing context mirrors start from: one warm forkserver per process.

    The forkserver imports mirrorscale, the heavy libraries this process already
    uses and ``modules`` (the task's module and its own imports, see
    :func:`task_imports`) once, then freezes what it holds out of the garbage
    collector's reach (:mod:`._warm`), so a mirror forks with all of it loaded
    and its measured call pays neither imports nor a collection of them. When a
    later mirror needs a module the server has not loaded, the server is
    restarted with it (its CPU is counted in :func:`warm_up_seconds`).
    """
    global _context, _warm_cpu
    wanted = set(modules) | {m for m in _PRELOAD_CANDIDATES if m in sys.modules}
    if _context is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        _context = multiprocessing.get_context(method)
    if _context.get_start_method() == "forkserver" and not wanted <= _preloaded:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        if getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
            _warm_cpu += forkserver_usage()[1]
            server._stop()  # restart with the larger preload list
        _preloaded.update(wanted)
        _log.debug("mirror forkserver preloads %s", sorted(_preloaded))
        loaded = sorted(m for m in _preloaded if m in sys.modules)  # those this process has first
        os.environ[PRELOAD_ENV] = ",".join(["mirrorscale.mirror.sandbox", "mirrorscale.monitor", *loaded,
                                            *sorted(_preloaded - set(loaded))])
        os.environ[SYS_PATH_ENV] = os.pathsep.join(sys.path)
        _context.set_forkserver_preload(["mirrorscale.mirror._warm"])  # it imports the rest, guarded
    return _context


def _stat_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its waited children (``/proc/<pid>/stat``), 0 when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, from ``/proc/<pid>/task/<tid>/children`` (psutil where that is missing).

    Reading the children files costs a few system calls per process; psutil's
    ``children()`` reads every process of the machine, many times a second.
    """
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        try:
            return [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            return [root]
    pids, i = [root], 0
    while i < len(pids):
        try:
            tids = os.listdir(f"/proc/{pids[i]}/task")
        except OSError:
            tids = []
        for tid in tids:
            try:
                with open(f"/proc/{pids[i]}/task/{tid}/children", "rb") as fh:
                    pids.extend(int(c) for c in fh.read().split() if int(c) not in pids)
            except (OSError, ValueError):
                continue
        i += 1
    return pids


class _Watch:
    """The parent's view of a running child: messages, RSS watchdog, CPU seen."""

    def __init__(self, proc: Any, conn: Any, cap: int | None) -> None:
        self.proc, self.conn, self.cap = proc, conn, cap
        self.baseline: int | None = None
        self.layers: tuple[str, ...] = ()
        self.done: tuple[Any, ...] | None = None
        self.peak_rss = 0
        self.cpu = 0.0

    def receive(self) -> None:
        """Read every pending message from the child."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message[0] == "ready":
                    self.baseline, self.layers = message[1], tuple(message[2])
                else:
                    self.done = message
        except (EOFError, OSError):
            return

    def tree_rss(self) -> int:
        """RSS of the child and its descendants now; also tracks peak and CPU (cheap /proc reads)."""
        rss = 0
        for pid in _tree_pids(self.proc.pid):
            rss += _status_bytes("VmRSS", pid)
        cpu = _stat_cpu(self.proc.pid)
        self.cpu = max(self.cpu, cpu)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def over_cap(self) -> bool:
        """The watchdog rule: the tree grew more than ``cap`` above the pre-call RSS."""
        rss = self.tree_rss()
        return bool(self.cap and self.baseline is not None and rss - self.baseline > self.cap)


@contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Keep multiprocessing from re-running the parent's ``__main__`` script in the mirror.

    A script's main module has no ``__spec__``, so multiprocessing would execute the
    whole script again in every child (seconds of imports in the mirror's cost). A
    mirror imports ``fn`` by name and never needs it: during the start the main
    module carries a ``__spec__`` named ``__main__``, which the child skips.
    """
    import importlib.machinery

    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def _kill(proc: Any, group: str | None) -> None:
    """SIGKILL the child's process group (and everything left in its cgroup)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group:
        cgroup.kill_all(group)


def _supervise(watch: _Watch, timeout: float | None, group: str | None) -> str | None:
    """Wait for the child; kill it on timeout or watchdog; return the reason when killed."""
    start = time.monotonic()
    while True:
        watch.proc.join(_WATCH_INTERVAL)
        watch.receive()
        if watch.proc.exitcode is not None:
            return None
        if timeout is not None and time.monotonic() - start > timeout:
            _kill(watch.proc, group)
            return "timeout"
        if watch.over_cap():
            _kill(watch.proc, group)
            return "memory_cap"


def _result(watch: _Watch, killed: str | None, group: str | None, options: dict[str, Any],
            wall: float) -> SandboxResult:
    layers = (*watch.layers, "watchdog") if options.get("memory_cap") else watch.layers
    exitcode = watch.proc.exitcode
    base = {"process_wall_seconds": wall, "exitcode": exitcode, "enforcement": layers}
    if killed == "timeout":
        return SandboxResult("timeout", f"killed after the {options['timeout']:g} s timeout", None,
                             watch.peak_rss, watch.cpu, **base)
    if killed == "memory_cap" or (watch.done is None and group and cgroup.oom_killed(group)):
        cap = options.get("memory_cap") or 0
        return SandboxResult("memory_cap", f"killed above the memory cap of {cap} bytes", None,
                             watch.peak_rss, watch.cpu, **base)
    if watch.done is None:
        return SandboxResult("error", f"mirror process died (exit code {exitcode})", None,
                             watch.peak_rss, watch.cpu, **base)
    _, outcome, error, cost, peak, child_cpu = watch.done
    if cost is not None and cost.imported:
        _learned.setdefault(options["reference"], set()).update(cost.imported)
    cpu = max(watch.cpu, child_cpu, cost.cpu_seconds if cost else 0.0)
    return SandboxResult(outcome, error, cost, max(peak, watch.peak_rss), cpu, **base)


def run_sandboxed(fn: Callable[..., Any] | str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                  *, memory_cap: int | None = None, timeout: float | None = None, niceness: int = 10,
                  scratch: str | os.PathLike[str] | None = None, mirror: bool = True,
                  preload: tuple[str, ...] = (), scale: float | None = None) -> SandboxResult:
    """Run ``fn(*args, **kwargs)`` in a sandboxed child process and measure it (see module doc).

    ``memory_cap`` limits the RSS increase of the call in bytes, ``timeout`` the
    child's life in seconds. ``scratch`` is kept when given, else a temporary
    directory is made and removed afterwards. ``mirror=False`` runs the same way
    without marking the child a mirror (used to measure a full run fairly).
    ``preload`` names more modules the warm forkserver imports once (if this process has them).
    ``scale`` is the share of the real input that ``args``/``kwargs`` hold (see
    :func:`mimic_full_scale`); None runs the call as is. The input travels
    pickled (:mod:`.transport`); an argument that cannot be pickled raises
    :class:`~mirrorscale.mirror.transport.UnsendableInput` before any process starts.
    """
    import shutil

    reference = callable_reference(fn)
    payload = pack(args, kwargs or {})  # raises UnsendableInput before anything starts
    own_scratch = scratch is None
    scratch_path = tempfile.mkdtemp(prefix="mirrorscale-mirror-") if own_scratch else os.fspath(scratch)
    group = cgroup.create() if memory_cap else None
    options = {"memory_cap": memory_cap, "timeout": timeout, "niceness": niceness, "scratch": scratch_path,
               "mirror": mirror, "cgroup": group, "reference": reference, "scale": scale}
    ctx = _get_context((*task_imports(reference), *preload))
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child_conn, reference, payload, options),
                       name="mirrorscale-mirror", daemon=True)
    start = time.monotonic()
    try:
        with _main_not_reimported():
            proc.start()
        child_conn.close()
        watch = _Watch(proc, parent_conn, memory_cap)
        killed = _supervise(watch, timeout, group)
        proc.join()
        watch.receive()
        return _result(watch, killed, group, options, time.monotonic() - start)
    finally:
        parent_conn.close()
        if group:
            cgroup.remove(group)
        if own_scratch:
            shutil.rmtree(scratch_path, ignore_errors=True)
