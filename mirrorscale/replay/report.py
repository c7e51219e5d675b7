"""Turn replay tallies into report rows, JSON and the cumulative-wastage plot."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mirrorscale.replay.accounting import Tally

RESULT_KEYS = ("workflow", "method", "tasks", "wastage_gbh", "failed_attempts", "maq")
"""The keys of one result, in the order ``--json`` prints them."""


def result_rows(tallies: Sequence[Tally]) -> list[dict]:
    """One dict per (workflow, method) with :data:`RESULT_KEYS` (wastage and MAQ rounded)."""
    return [{
        "workflow": t.workflow,
        "method": t.method,
        "tasks": t.tasks,
        "wastage_gbh": round(t.wastage_gbh, 4),
        "failed_attempts": t.failures,
        "maq": round(t.maq, 4),
    } for t in tallies]


def json_payload(protocol: str, tallies: Sequence[Tally]) -> dict:
    """``{"protocol": ..., "results": [...]}`` as ``mirrorscale replay --json`` prints it."""
    return {"protocol": protocol, "results": result_rows(tallies)}


def relative_to(tallies: Sequence[Tally], reference: str) -> dict[tuple[str, str], float]:
    """Each tally's wastage divided by ``reference``'s on the same workflow (where that exists)."""
    base = {t.workflow: t.wastage_gbh for t in tallies if t.method == reference}
    return {(t.workflow, t.method): t.wastage_gbh / base[t.workflow]
            for t in tallies if base.get(t.workflow)}


def plot_cumulative(tallies: Sequence[Tally], path: str | Path, title: str = "") -> Path:
    """Draw cumulative wastage (GB·h) over replayed tasks, one panel per workflow, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workflows = list(dict.fromkeys(t.workflow for t in tallies))
    fig, axes = plt.subplots(1, len(workflows), figsize=(6 * len(workflows), 4.2), squeeze=False)
    for axis, workflow in zip(axes[0], workflows):
        for tally in (t for t in tallies if t.workflow == workflow):
            series = tally.cumulative_array()
            style = {"linewidth": 2.4} if tally.method == "mirrorscale" else {"linewidth": 1.2}
            axis.plot(range(1, len(series) + 1), series, label=tally.method, **style)
        axis.set_title(workflow)
        axis.set_xlabel("tasks replayed")
        axis.set_ylabel("cumulative wastage (GB·h)")
        axis.set_yscale("symlog", linthresh=0.1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
