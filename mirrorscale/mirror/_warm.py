"""Imported last by the mirrors' warm forkserver: the task's own imports, then settle.

Imports the modules named in ``MIRRORSCALE_MIRROR_PRELOAD`` (those a task imports
inside its function; any error is ignored, the call then imports it itself),
collects garbage, moves every surviving object to the collector's permanent
generation (``gc.freeze``), so a mirror's ``gc.collect()`` before its call and
the collections during it do not walk (and copy-on-write) the preloaded
libraries, and hands freed heap back to the OS so a mirror cannot reuse it unseen.
"""

from __future__ import annotations

import gc
import importlib
import os

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
