"""Overhead and accuracy of mirrorscale.monitor.

Run: ``python benchmarks/monitor_overhead.py [--seconds 5]``

Overhead is the CPU time the monitor spends sampling (``thread_time`` of every
scan, ``ResourceUsage.monitor_cpu_seconds``) as % of one core, cross-checked by
the process CPU of an idle (sleeping) workload with and without a monitor.
Accuracy compares measured peaks, CPU seconds and written bytes with known
amounts; ``sampled only`` is what the sampling thread alone saw.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

import _monitor_helpers as helpers  # noqa: E402

from mirrorscale.monitor import (  # noqa: E402
    DEFAULT_INTERVAL,
    ProcessMonitor,
    ResourceUsage,
    reset_peak_rss,
    watch_pid,
)

MIB = helpers.MIB


def own_idle(seconds: float, interval: float) -> ResourceUsage:
    """Monitor this process while it sleeps."""
    with ProcessMonitor(interval=interval) as monitor:
        time.sleep(seconds)
    assert monitor.usage is not None
    return monitor.usage


def idle_cpu(seconds: float, monitored: bool) -> float:
    """Process CPU seconds used while sleeping, with or without a monitor."""
    start = time.process_time()
    if monitored:
        own_idle(seconds, DEFAULT_INTERVAL)
    else:
        time.sleep(seconds)
    return time.process_time() - start


def watched_tree(seconds: float, processes: int) -> ResourceUsage:
    """Watch a shell with ``processes - 1`` children that sleep ``seconds``."""
    script = f"sleep {seconds} & " * (processes - 1) + "wait"
    proc = subprocess.Popen(["/bin/sh", "-c", script])
    return watch_pid(proc.pid).wait(timeout=seconds + 30, popen=proc)


def overhead(seconds: float) -> None:
    """Print the monitor's CPU as % of one core."""
    print(f"== overhead (idle workload, {seconds:.0f} s per row)")
    for interval in (DEFAULT_INTERVAL, 0.05, 0.01):
        usage = own_idle(seconds, interval)
        pct = 100 * usage.monitor_cpu_seconds / usage.wall_seconds
        print(f"own process, interval {interval:<5} : {pct:6.3f} % of one core ({len(usage.samples)} samples kept)")
    for processes in (2, 11):
        usage = watched_tree(seconds, processes)
        pct = 100 * usage.monitor_cpu_seconds / usage.wall_seconds
        print(f"watch tree of {processes:>2} process(es), interval {DEFAULT_INTERVAL}: {pct:6.3f} % of one core"
              f" (processes seen {usage.processes_seen})")
    without, with_monitor = idle_cpu(seconds, False), idle_cpu(seconds, True)
    print(f"cross-check, process CPU while sleeping {seconds:.0f} s: without monitor {without * 1e3:.1f} ms,"
          f" with monitor {with_monitor * 1e3:.1f} ms -> {100 * (with_monitor - without) / seconds:.3f} % of one core")


def row(name: str, measured: float, expected: float, unit: str, extra: str = "") -> None:
    """Print one accuracy line."""
    error = 100 * (measured - expected) / expected
    print(f"{name:<47} expected {expected:9.1f} {unit:<3} measured {measured:9.1f} {unit:<3} error {error:+6.1f} %{extra}")


def spike_in_this_process(hidden: bool) -> ResourceUsage:
    """400 MiB allocated and freed in this process; ``hidden`` keeps the GIL throughout."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(30 if hidden else old)
    try:
        with ProcessMonitor() as monitor:
            block = bytearray(400 * MIB)
            del block
    finally:
        sys.setswitchinterval(old)
    assert monitor.usage is not None
    return monitor.usage


def memory_row(name: str, usage: ResourceUsage, expected: int) -> None:
    """Print one peak-increase line with the sampled-only value beside it."""
    sampled = (usage.sampled_peak_rss_bytes - usage.baseline_rss_bytes) / MIB
    row(name, usage.peak_rss_increase_bytes / MIB, expected / MIB, "MiB",
        f"  (sampled only {sampled:6.1f} MiB, source {usage.peak_source})")


def accuracy() -> None:
    """Print measured vs known amounts."""
    print("== accuracy")
    memory_row("own process, one call 400 MiB", spike_in_this_process(False), 400 * MIB)
    memory_row("own process, 400 MiB, GIL held throughout", spike_in_this_process(True), 400 * MIB)
    proc = helpers.spawn(helpers.ALLOC, 300 * MIB, 0, 0.3)
    monitor = watch_pid(proc.pid)
    helpers.go(proc)
    memory_row("child, 300 MiB spike, freed at once", monitor.wait(timeout=30), 300 * MIB)
    proc.wait()
    reset_peak_rss(os.getpid())  # a child's ru_maxrss starts at its parent's VmHWM (vfork)
    proc = helpers.spawn(helpers.ALLOC, 300 * MIB, 0, 0)
    monitor = watch_pid(proc.pid)
    helpers.go(proc)
    memory_row("child, 300 MiB, exits at once, wait4", monitor.wait(timeout=30, popen=proc), 300 * MIB)
    spike_in_this_process(False)  # now our VmHWM is ~420 MiB: wait4 of a small child is not trusted
    proc = helpers.spawn(helpers.ALLOC, 30 * MIB, 0, 0)
    monitor = watch_pid(proc.pid)
    helpers.go(proc)
    memory_row("blind spot: 30 MiB child, exits in 1 interval", monitor.wait(timeout=30, popen=proc), 30 * MIB)
    proc = helpers.spawn(helpers.SPAWN_GRANDCHILD, helpers.RSS_THEN_ALLOC, 200 * MIB, 0.4)
    monitor = watch_pid(proc.pid)
    helpers.go(proc)
    base = int(helpers.read_line(proc))
    memory_row("grandchild, 200 MiB + its interpreter", monitor.wait(timeout=30), 200 * MIB + base)
    proc.wait()
    proc = helpers.spawn(helpers.BUSY, 1.0)
    started = time.perf_counter()
    monitor = watch_pid(proc.pid)
    helpers.go(proc)
    reported = float(helpers.read_line(proc))
    finished = time.perf_counter()  # the child printed its last line and exits now
    usage = monitor.wait(timeout=30)
    proc.wait()
    row("child CPU, busy 1 s (no reaping)", usage.cpu_seconds, reported, "s")
    row("  its wall seconds (exit seen within 1 interval)", usage.wall_seconds, finished - started, "s")
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp:
        proc = helpers.spawn(helpers.WRITER, Path(tmp) / "out.bin", 50 * MIB)
        monitor = watch_pid(proc.pid)
        helpers.go(proc)
        usage = monitor.wait(timeout=30, popen=proc)
    row("child writes 50 MiB + fsync (write_bytes)", usage.write_bytes / MIB, 50, "MiB")


def main() -> None:
    """Parse arguments and print both reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each overhead run")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, default interval {DEFAULT_INTERVAL} s")
    overhead(args.seconds)
    accuracy()


if __name__ == "__main__":
    main()
