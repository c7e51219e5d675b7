"""Child-process scripts for the monitor tests.

Every script prints ``ready`` once its interpreter is up, waits for a line on
stdin (so the test can start watching first), does its work, prints one result
line and exits.
"""

from __future__ import annotations

import subprocess
import sys

MIB = 2**20

ALLOC = """
import sys, time
size, hold, linger = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True); sys.stdin.readline()
block = bytearray(size)          # one C call; zero-filled, so every page is touched
time.sleep(hold)
del block
print("done", flush=True)
time.sleep(linger)
"""

RSS_THEN_ALLOC = """
import sys, time
size, hold = int(sys.argv[1]), float(sys.argv[2])
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(int(rss) * 1024, flush=True)
block = bytearray(size)
time.sleep(hold)
"""

SPAWN_GRANDCHILD = """
import subprocess, sys
print("ready", flush=True); sys.stdin.readline()
grandchild = subprocess.Popen(
    [sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], stdout=subprocess.PIPE, text=True
)
base = grandchild.stdout.readline().strip()
grandchild.wait()
print(base, flush=True)
"""

BUSY = """
import sys, time
seconds = float(sys.argv[1])
print("ready", flush=True); sys.stdin.readline()
while time.process_time() < seconds:
    pass
print(time.process_time(), flush=True)
"""

BUSY_GRANDCHILD = """
import subprocess, sys, time
print("ready", flush=True); sys.stdin.readline()
out = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], input="go\\n",
                     capture_output=True, text=True).stdout.split()
print(out[-1], flush=True)
time.sleep(0.2)
"""

ORPHAN_TREE = """
import subprocess, sys, time
leaf = "import time\\nwhile time.process_time() < 0.25: pass\\nprint(time.process_time(), flush=True)"
middle = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {leaf!r}]); time.sleep(0.2)"
print("ready", flush=True); sys.stdin.readline()
proc = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True)
proc.wait()                                   # the middle exits; the leaf is an orphan now
leaf_cpu = float(proc.stdout.readline())      # the leaf has finished
start = time.process_time()
while time.process_time() < start + 0.25:
    pass
print(leaf_cpu + time.process_time() - start, flush=True)
"""

WRITER = """
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
print("ready", flush=True); sys.stdin.readline()
with open(path, "wb") as fh:
    fh.write(b"x" * size)
    fh.flush()
    os.fsync(fh.fileno())
print("done", flush=True)
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    """Start ``python -c script args...`` and return once it printed ``ready``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    """Tell a spawned script to start its work."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def read_line(proc: subprocess.Popen[str]) -> str:
    """Next line the script printed."""
    assert proc.stdout is not None
    return proc.stdout.readline().strip()
