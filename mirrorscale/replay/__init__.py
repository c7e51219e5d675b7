"""Offline evaluation: replay recorded traces and score sizing methods side by side.

See :mod:`mirrorscale.replay.protocols` for the two protocols and
:mod:`mirrorscale.replay.accounting` for how wastage is counted.
"""

from __future__ import annotations

from mirrorscale.replay.accounting import RunOutcome, Tally, gbh, replay_run
from mirrorscale.replay.records import ReplayTask, from_nextflow, load_nextflow_traces

__all__ = ["ReplayTask", "RunOutcome", "Tally", "from_nextflow", "gbh", "load_nextflow_traces", "replay_run"]
