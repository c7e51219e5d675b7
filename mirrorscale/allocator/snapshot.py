"""Checkpoints of the allocator's per-task models: versioned JSON in the store, never a pickle.

Every Airflow task runs in a fresh process, so without a checkpoint each
process's first decision for a task refits the sizer on the task's newest
:data:`~mirrorscale.allocator.history.WINDOW` runs. With one, the process
restores the :class:`~mirrorscale.allocator.history.TaskModel` from its JSON
state and feeds only the runs started at or after the snapshot's
*watermark* (the newest run it had seen), like a warm model does.

=====================  ==================================================================
stage                  rule
=====================  ==================================================================
restore                the task's snapshot of this method: layout :data:`MODEL_STATE_VERSION`,
                       the sizer's own ``get_state`` layout and every field checked; one that
                       is corrupt, of another version or of a sizer without state is
                       **skipped with one warning** and the model is refitted from the runs
write                  after a decision, when the model learned ``every`` (5) runs since the
                       stored snapshot, or was refitted because there was none or it was
                       unreadable; never while a trace is recorded
size                   the sizer's run history is cut to its newest :data:`SNAPSHOT_RUNS`
                       runs (the first fit reads 200); recent statistics are 20 values each
=====================  ==================================================================

A snapshot whose JSON the store cannot take (a non-finite number) is not
written; a failed read or write costs a refit or the next decision's retry,
never the decision.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import Any

from mirrorscale.allocator.history import RECENT, TaskModel
from mirrorscale.store.rows import TraceRow

logger = logging.getLogger("mirrorscale.allocator")

MODEL_STATE_VERSION = 1
"""Layout version of :func:`model_state`; a snapshot of any other version is refitted."""
SNAPSHOT_RUNS = 500
"""Newest runs of the sizer's history a snapshot keeps."""
_HISTORY_COLUMNS = ("usage", "runtime", "input_size", "request")


class SnapshotError(ValueError):
    """A stored model snapshot this code cannot use (the message says why)."""


def model_state(model: TaskModel) -> dict[str, Any] | None:
    """The JSON state of ``model``, or None when its sizer has no ``get_state`` (baseline methods)."""
    get_state = getattr(model.sizer, "get_state", None)
    if get_state is None:
        return None
    sizer = get_state()
    history = sizer.get("history")
    if isinstance(history, dict):
        sizer = {**sizer, "history": {k: v[-SNAPSHOT_RUNS:] if isinstance(v, list) else v
                                      for k, v in history.items()}}
    return {
        "version": MODEL_STATE_VERSION,
        "method": model.method,
        "sizer": sizer,
        "runs": model.runs,
        "last_started": None if model.last_started is None else model.last_started.isoformat(),
        "ids_at_last": sorted(model._ids_at_last),
        "errors": list(model.errors),
        "cpu_ratio": list(model.cpu_ratio),
        "wall": list(model.wall),
        "baseline": list(model.baseline),
        "tail": [_tail_row(t).to_json() for t in model.tail],
        "last_input_size": model.last_input_size,
        "skipped": model.skipped,
    }


def _tail_row(trace: Any) -> TraceRow:
    """The fields the OOM bump reads (no features: a snapshot stays small)."""
    return TraceRow(*(None if name == "features" else getattr(trace, name, None) for name in TraceRow._fields))


def restore(state: Any, *, method: str) -> TaskModel:
    """The :class:`TaskModel` saved by :func:`model_state`; :class:`SnapshotError` naming what is wrong."""
    if not isinstance(state, dict):
        raise SnapshotError(f"the state is a JSON {type(state).__name__}, not an object")
    if state.get("version") != MODEL_STATE_VERSION:
        raise SnapshotError(f"layout version {state.get('version')!r}, this mirrorscale reads {MODEL_STATE_VERSION}")
    if state.get("method") != method:
        raise SnapshotError(f"a model of method {state.get('method')!r}, not {method!r}")
    model = TaskModel(method=method)
    from_state = getattr(type(model.sizer), "from_state", None)
    if from_state is None:
        raise SnapshotError(f"the {method!r} sizer cannot be restored from a state")
    try:
        model.adopt(from_state(state.get("sizer")))
        model.runs = _count(state, "runs")
        model.skipped = _count(state, "skipped")
        model.last_started = _time(state.get("last_started"))
        ids = state.get("ids_at_last")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise SnapshotError("'ids_at_last' must be a list of integers")
        model._ids_at_last = set(ids)
        for name in ("errors", "cpu_ratio", "wall", "baseline"):
            getattr(model, name).extend(_numbers(state, name))
        model.baseline = type(model.baseline)((int(b) for b in model.baseline), maxlen=RECENT)
        tail = state.get("tail")
        if not isinstance(tail, list):
            raise SnapshotError("'tail' must be a list of trace rows")
        model.tail.extend(TraceRow.from_json(row) for row in tail)
        last_input = state.get("last_input_size")
        model.last_input_size = None if last_input is None else _finite(last_input, "last_input_size")
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SnapshotError(str(exc) or type(exc).__name__) from None
    return model


def _count(state: dict[str, Any], name: str) -> int:
    value = state.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotError(f"{name!r} = {value!r} is not a count")
    return value


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SnapshotError(f"{name!r} holds {value!r}, not a finite number")
    return float(value)


def _numbers(state: dict[str, Any], name: str) -> list[float]:
    values = state.get(name)
    if not isinstance(values, list):
        raise SnapshotError(f"{name!r} must be a list of numbers")
    return [_finite(v, name) for v in values[-RECENT:]]


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise SnapshotError(f"'last_started' = {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise SnapshotError(f"'last_started' = {value!r} has no time zone")
    return moment


def load(store: Any, key: tuple[str, str, str], method: str) -> tuple[TaskModel | None, bool]:
    """The model restored from the store's snapshot (None: none or unusable) and whether one was stored.

    An unusable snapshot is logged (one warning) and reported as stored, so
    the caller replaces it after refitting.
    """
    row = store.load_model(key, method)
    if row is None:
        return None, False
    try:
        if row.version != MODEL_STATE_VERSION:
            raise SnapshotError(f"layout version {row.version!r}, this mirrorscale reads {MODEL_STATE_VERSION}")
        return restore(row.state, method=method), True
    except SnapshotError as exc:
        logger.warning("mirrorscale: skipped the stored %s model of task %s.%s (%s); refitting it from the "
                       "stored runs", method, key[1], key[2], exc)
        return None, True


def save(store: Any, key: tuple[str, str, str], model: TaskModel, *, replace: bool = False) -> bool:
    """Write ``model``'s snapshot; False when its sizer has no state or the state is not plain JSON."""
    state = model_state(model)
    if state is None:
        return False
    try:
        json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        logger.debug("mirrorscale: model of %s not checkpointed: %s", ".".join(key[1:]), exc)
        return False
    return store.save_model(key, model.method, version=MODEL_STATE_VERSION, runs=model.runs,
                            watermark=model.last_started, state=state, replace=replace)
