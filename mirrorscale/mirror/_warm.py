"""The only module the mirrors' warm forkserver is told to preload: it loads the rest, then settles.

Python's forkserver ignores the parent's ``sys.path`` while it preloads, so
a module found through a path added at run time (an Airflow DAG folder, a
flow's directory) would be imported anew in every mirror. This module first
puts the parent's path (``MIRRORSCALE_MIRROR_SYS_PATH``) in place, then imports
the modules named in ``MIRRORSCALE_MIRROR_PRELOAD`` in order (mirrorscale's
sandbox, the heavy libraries, the task's module and the modules it imports
inside its function; any error is ignored, the mirror then imports it itself),
collects garbage, moves every surviving object to the collector's permanent
generation (``gc.freeze``), so a mirror's ``gc.collect()`` before its call and
the collections during it do not walk (and copy-on-write) the preloaded
libraries, and hands freed heap back to the OS so a mirror cannot reuse it unseen.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

_path = os.environ.get("MIRRORSCALE_MIRROR_SYS_PATH")
if _path:
    sys.path[:] = _path.split(os.pathsep)

for _name in filter(None, os.environ.get("MIRRORSCALE_MIRROR_PRELOAD", "").split(",")):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001, S110 - a module that cannot load here is imported by the call instead
        pass

gc.collect()
gc.freeze()
try:
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
except (OSError, AttributeError):  # pragma: no cover - not glibc
    pass
