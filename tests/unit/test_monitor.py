"""Tests of mirrorscale.monitor against known allocations, CPU burns and writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from mirrorscale import monitor as monitor_mod
from mirrorscale.monitor import ProcessMonitor, ResourceSample, ResourceUsage, watch_pid

try:
    from . import _monitor_helpers as helpers
except ImportError:
    import _monitor_helpers as helpers

MIB = helpers.MIB
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def assert_close(measured: float, expected: float, rel: float) -> None:
    assert abs(measured - expected) <= rel * expected, f"{measured / MIB:.1f} MiB vs {expected / MIB:.1f} MiB"


# -- (a) a child process watched by pid ------------------------------------------------


@linux_only
def test_child_spike_seen_through_high_water_mark() -> None:
    """300 MiB allocated and freed between two readings is found via VmHWM."""
    proc = helpers.spawn(helpers.ALLOC, 300 * MIB, 0, 0.5)
    monitor = watch_pid(proc.pid, interval=60)  # no sample between start and stop
    helpers.go(proc)
    assert helpers.read_line(proc) == "done"  # freed; the child lingers 0.5 s
    usage = monitor.stop()
    proc.wait()
    assert usage.sampled_peak_rss_bytes - usage.baseline_rss_bytes < 50 * MIB
    assert usage.peak_source == "hwm"
    assert_close(usage.peak_rss_increase_bytes, 300 * MIB, 0.10)
    assert 5 * MIB < usage.baseline_rss_bytes < 100 * MIB  # a bare interpreter


@linux_only
def test_child_that_exits_at_once_measured_by_wait4() -> None:
    """The child exits right after its spike; ``wait(popen=...)`` reaps it and reads ru_maxrss."""
    monitor_mod.reset_peak_rss(os.getpid())  # else ru_maxrss starts at our own high-water mark
    proc = helpers.spawn(helpers.ALLOC, 300 * MIB, 0, 0)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    usage = monitor.wait(timeout=10, popen=proc)
    assert proc.returncode == 0
    assert_close(usage.peak_rss_increase_bytes, 300 * MIB, 0.10)


@linux_only
def test_wait4_does_not_report_the_parents_memory() -> None:
    """A child spawned by a process with a high VmHWM inherits it into ru_maxrss."""
    block = bytearray(300 * MIB)
    del block
    proc = helpers.spawn(helpers.ALLOC, 30 * MIB, 0, 0)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    usage = monitor.wait(timeout=10, popen=proc)
    assert usage.peak_rss_increase_bytes < 30 * MIB * 1.1


@linux_only
def test_child_spawned_before_the_run_does_not_report_our_old_memory() -> None:
    """Own-process mode: a child spawned while we held 300 MiB, reaped during the run."""
    block = bytearray(300 * MIB)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    del block
    with ProcessMonitor(interval=0.05) as monitor:
        proc.wait()
    assert monitor.usage is not None
    assert monitor.usage.peak_rss_increase_bytes < 30 * MIB


# -- (b) one C call in this process ----------------------------------------------------


@linux_only
def test_single_c_call_in_this_process() -> None:
    """The sampling thread cannot run during the call; the kernel HWM sees it anyway."""
    with ProcessMonitor(interval=0.05) as monitor:
        block = bytearray(400 * MIB)
        del block
    usage = monitor.usage
    assert usage is not None
    assert_close(usage.peak_rss_increase_bytes, 400 * MIB, 0.10)


@linux_only
def test_spike_hidden_from_the_sampling_thread() -> None:
    """With a long switch interval the main thread keeps the GIL across the whole
    spike, as one long C call would: only the kernel high-water mark can see it."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(30)
    try:
        with ProcessMonitor(interval=0.01) as monitor:
            block = bytearray(400 * MIB)
            del block
    finally:
        sys.setswitchinterval(old)
    usage = monitor.usage
    assert usage is not None
    assert usage.sampled_peak_rss_bytes - usage.baseline_rss_bytes < 40 * MIB
    assert usage.peak_source == "hwm"
    assert_close(usage.peak_rss_increase_bytes, 400 * MIB, 0.10)


@linux_only
def test_nested_monitor_does_not_hide_outer_spike() -> None:
    """An inner monitor resets VmHWM; the outer one must keep the spike before it."""
    with ProcessMonitor(interval=0.05) as outer:
        block = bytearray(200 * MIB)
        del block
        with ProcessMonitor(interval=0.05) as inner:
            small = bytearray(50 * MIB)
            del small
    assert outer.usage is not None and inner.usage is not None
    assert_close(outer.usage.peak_rss_increase_bytes, 200 * MIB, 0.10)
    assert_close(inner.usage.peak_rss_increase_bytes, 50 * MIB, 0.10)


# -- (c) a tree: child spawns a grandchild that allocates ------------------------------


def test_grandchild_allocation_is_captured() -> None:
    proc = helpers.spawn(helpers.SPAWN_GRANDCHILD, helpers.RSS_THEN_ALLOC, 200 * MIB, 0.4)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    grandchild_base = int(helpers.read_line(proc))
    usage = monitor.wait(timeout=10)
    proc.wait()
    assert usage.processes_seen >= 2
    assert_close(usage.peak_rss_increase_bytes, 200 * MIB + grandchild_base, 0.10)


def test_include_children_false_ignores_the_grandchild() -> None:
    proc = helpers.spawn(helpers.SPAWN_GRANDCHILD, helpers.RSS_THEN_ALLOC, 100 * MIB, 0.2)
    monitor = watch_pid(proc.pid, interval=0.05, include_children=False)
    helpers.go(proc)
    usage = monitor.wait(timeout=10)
    proc.wait()
    assert usage.processes_seen == 1
    assert usage.peak_rss_increase_bytes < 50 * MIB


# -- (d) CPU, wall time, I/O -----------------------------------------------------------


def test_cpu_of_busy_child() -> None:
    proc = helpers.spawn(helpers.BUSY, 1.0)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    reported = float(helpers.read_line(proc))
    usage = monitor.wait(timeout=20, popen=proc)
    assert_close(usage.cpu_seconds, reported, 0.15)
    assert 0.9 < usage.wall_seconds < 15


def test_cpu_of_unseen_exited_grandchild_counts_through_parent() -> None:
    """The grandchild lives and dies between two samples: its CPU reaches the tree
    only through its parent's cutime."""
    proc = helpers.spawn(helpers.BUSY_GRANDCHILD, helpers.BUSY, 0.5)
    monitor = watch_pid(proc.pid, interval=60)
    helpers.go(proc)
    reported = float(helpers.read_line(proc))
    usage = monitor.stop()
    proc.wait()
    assert usage.processes_seen == 1
    assert_close(usage.cpu_seconds, reported, 0.15)
    assert 0.4 < usage.wall_seconds < 15


def test_cpu_of_orphan_is_kept_after_it_exits() -> None:
    """root -> middle -> leaf; the middle exits first, the leaf (an orphan now) burns
    0.25 s and exits, then the root burns 0.25 s: both count."""
    proc = helpers.spawn(helpers.ORPHAN_TREE)
    monitor = watch_pid(proc.pid, interval=0.02)
    helpers.go(proc)
    reported = float(helpers.read_line(proc))
    usage = monitor.wait(timeout=20)
    proc.wait()
    assert usage.processes_seen >= 3
    assert_close(usage.cpu_seconds, reported, 0.15)


def test_cpu_in_this_process_excludes_monitor() -> None:
    with ProcessMonitor(interval=0.01) as monitor:
        end = time.thread_time() + 0.3  # this thread's CPU: the monitor's own thread is not part of the work
        while time.thread_time() < end:
            pass
    usage = monitor.usage
    assert usage is not None
    assert 0.3 * 0.95 < usage.cpu_seconds < 0.3 * 1.15
    assert usage.monitor_cpu_seconds > 0


def _on_tmpfs(path: str) -> bool:
    mounts = [p for p in psutil.disk_partitions(all=True) if path.startswith(p.mountpoint)]
    return bool(mounts) and max(mounts, key=lambda p: len(p.mountpoint)).fstype == "tmpfs"


@linux_only
def test_write_bytes_of_child(tmp_path) -> None:
    if _on_tmpfs(str(tmp_path)):
        pytest.skip("tmpfs has no block I/O accounting")
    proc = helpers.spawn(helpers.WRITER, tmp_path / "out.bin", 50 * MIB)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    assert helpers.read_line(proc) == "done"
    usage = monitor.wait(timeout=10)
    proc.wait()
    assert_close(usage.write_bytes, 50 * MIB, 0.10)
    assert usage.write_chars >= 50 * MIB


@linux_only
def test_write_bytes_in_this_process(tmp_path) -> None:
    if _on_tmpfs(str(tmp_path)):
        pytest.skip("tmpfs has no block I/O accounting")
    with ProcessMonitor() as monitor:
        with open(tmp_path / "out.bin", "wb") as fh:
            fh.write(os.urandom(50 * MIB))
            fh.flush()
            os.fsync(fh.fileno())
    assert monitor.usage is not None
    assert_close(monitor.usage.write_bytes, 50 * MIB, 0.10)


# -- (e) bounded samples ---------------------------------------------------------------


def test_samples_bounded_on_long_run() -> None:
    with ProcessMonitor(interval=0.001, max_samples=16) as monitor:
        time.sleep(0.4)
    usage = monitor.usage
    assert usage is not None
    assert 4 <= len(usage.samples) <= 16
    times = [s.t_seconds for s in usage.samples]
    assert times == sorted(times) and times[0] >= 0.0
    assert times[-1] >= 0.35
    assert max(s.rss_bytes for s in usage.samples) == usage.sampled_peak_rss_bytes


def test_sample_buffer_keeps_envelope() -> None:
    buffer = monitor_mod._SampleBuffer(8)
    for i in range(1000):
        buffer.add(ResourceSample(float(i), 777 if i == 333 else i % 7, float(i)))
    samples = buffer.freeze()
    assert len(samples) <= 8
    assert max(s.rss_bytes for s in samples) == 777
    assert samples[-1].cpu_seconds == 999.0 and samples[-1].t_seconds == 999.0


# -- (f) processes that vanish ---------------------------------------------------------


def test_short_lived_processes_do_not_crash() -> None:
    proc = subprocess.Popen(["/bin/sh", "-c", "for i in $(seq 150); do /bin/true; done; sleep 0.1"])
    monitor = watch_pid(proc.pid, interval=0.001)
    usage = monitor.wait(timeout=20, popen=proc)
    assert proc.returncode == 0
    assert usage.processes_seen >= 2


def test_vanished_orphan_cpu_is_credited_but_waited_child_is_not() -> None:
    """A process that vanishes under a tracked parent went into the parent's cutime;
    an orphan (parent outside the tree, e.g. init) or the root itself did not."""
    monitor = ProcessMonitor()
    me = psutil.Process()
    tracked = monitor_mod._Tracked
    monitor._tracked = {
        monitor.pid: tracked(me, cpu=5.0, cpu0=1.0, ppid=1),
        101: tracked(me, cpu=2.0, ppid=1, io=(10, 20, 30, 40)),
        102: tracked(me, cpu=3.0, ppid=101),
        103: tracked(me, cpu=7.0, ppid=104),
        104: tracked(me, cpu=0.5, ppid=monitor.pid),
    }
    monitor._retire([101, 102, 103])
    assert monitor._cpu_credit == pytest.approx(2.0)
    assert set(monitor._tracked) == {monitor.pid, 104}
    assert monitor._io_done == (10, 20, 30, 40)
    monitor._retire([monitor.pid])
    assert monitor._cpu_credit == pytest.approx(6.0)


def test_killed_process_ends_the_watch() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    monitor = watch_pid(proc.pid, interval=0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    usage = monitor.wait(timeout=10, popen=proc)
    assert proc.returncode == -signal.SIGKILL
    assert usage.wall_seconds < 5


def test_access_denied_is_skipped(monkeypatch) -> None:
    def deny(pid: int) -> dict[str, int]:
        raise psutil.AccessDenied(pid)

    with ProcessMonitor(interval=0.01) as monitor:
        monkeypatch.setattr(monitor_mod, "_read_status", deny)
        time.sleep(0.05)
    assert monitor.usage is not None and monitor.usage.wall_seconds > 0
    assert monitor.usage.baseline_rss_bytes > 0


def test_works_without_proc_files(monkeypatch) -> None:
    """No /proc (another OS, or a locked-down container): psutil alone, sampled peak."""
    monkeypatch.setattr(monitor_mod, "_PROC", "/nonexistent-proc")
    proc = helpers.spawn(helpers.SPAWN_GRANDCHILD, helpers.RSS_THEN_ALLOC, 100 * MIB, 0.3)
    monitor = watch_pid(proc.pid, interval=0.05)
    helpers.go(proc)
    grandchild_base = int(helpers.read_line(proc))
    usage = monitor.wait(timeout=10, popen=proc)
    assert usage.processes_seen >= 2 and usage.peak_source != "hwm"
    assert_close(usage.peak_rss_increase_bytes, 100 * MIB + grandchild_base, 0.10)


def test_missing_pid_raises_at_start() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(psutil.NoSuchProcess):
        watch_pid(proc.pid)


def test_stop_is_idempotent_and_usage_math() -> None:
    monitor = ProcessMonitor(interval=0.05).start()
    first = monitor.stop()
    assert monitor.stop() is first is monitor.usage
    usage = ResourceUsage(10, 30, 0.0, 0.0, 0, 0, (), 1)
    assert usage.peak_rss_increase_bytes == 0
    with pytest.raises(ValueError):
        ProcessMonitor(max_samples=1)
