"""All named sizing methods, for replay and the allocator: ``METHODS[name].new_sizer()``.

The project's own best method is ``mirrorscale`` (the online selector of
:mod:`mirrorscale.predictors.selector`); the others are baselines.
"""

from __future__ import annotations

from mirrorscale.predictors.baselines import BASELINES, Method
from mirrorscale.predictors.pool import WorkflowPool
from mirrorscale.predictors.selector import SelectorSizer
from mirrorscale.predictors.vpa import VPASizer

OWN = Method("mirrorscale", "online selector of size-aware models with cost-optimal margins and a smart retry",
             SelectorSizer, WorkflowPool)
VPA = Method("vpa", "VPA-style: decaying histogram p90 +15 %, confidence scaling, OOM bump", VPASizer)

METHODS: dict[str, Method] = {m.name: m for m in (*BASELINES[:-1], VPA, OWN, BASELINES[-1])}
"""Method name -> method, in report order (baselines, VPA, mirrorscale, oracle)."""


def get_methods(names: list[str] | None = None) -> list[Method]:
    """The methods called ``names`` (all when empty); raises ``KeyError`` naming an unknown one."""
    if not names:
        return list(METHODS.values())
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise KeyError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return [METHODS[n] for n in names]
