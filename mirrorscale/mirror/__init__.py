"""Mirrors: run a task's own callable on a sampled slice of its input, in a sandbox.

``preview(fn, args, kwargs)`` samples the input (:mod:`.samplers`), runs ``fn``
in a separate capped, niced, time-limited process (:mod:`.sandbox`), and
extrapolates what the mirror cost to the full input (:mod:`.extrapolate`),
returning a transient :class:`~mirrorscale.store.models.ResourceShadow`.
Names are imported lazily so ``import mirrorscale.mirror`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "preview": "shadow", "mirror_task": "shadow", "MirrorError": "shadow", "default_memory_cap": "shadow",
    "sample_inputs": "samplers", "SampledInput": "samplers", "sample_value": "samplers",
    "sample_paths_by_bytes": "samplers", "sample_paths_by_count": "samplers",
    "run_sandboxed": "sandbox", "SandboxResult": "sandbox", "is_mirror": "sandbox", "scratch_dir": "sandbox",
    "extrapolate": "extrapolate", "CostPoint": "extrapolate", "Estimate": "extrapolate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
