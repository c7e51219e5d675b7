"""The :class:`Allocator`: from a task's history and shadow to an :class:`Allocation`, per mode.

::

    allocator = Allocator(HistoryStore.open(), load_policies())
    allocation = allocator.decide(("airflow", "etl", "transform"), run_id, features={"input_size_bytes": n})
    allocation.memory_bytes, allocation.pool_slots, allocation.reason

Stages (VPA style; each in its own module): feeder and aggregate state
(:mod:`.history`, cached per task, fed incrementally) -> estimator chain
(:mod:`.estimate`: history or shadow, OOM bump) -> post-processors
(:mod:`.post`: headroom, bounds, pool slots, CPU, priority, queue) -> capacity
plan across the tasks about to run (:mod:`.plan`).

Modes (the policy's ``mode``):

=============  ===========================================================
mode           what ``decide`` returns and stores
=============  ===========================================================
``observe``    the allocation it *would* make, ``mode="observe"``,
               ``applied=False``, **not stored** (only the trace is recorded;
               ``mirrorscale explain`` can still show it); None in cold start
``recommend``  computed and stored, ``applied=False`` (shown, not applied)
``enforce``    computed and stored, ``applied=True``: the engine glue must
               apply it before the task starts
=============  ===========================================================

Cold start (no successful run, no usable shadow): the policy's
``default_memory`` (source ``default``); without one there is nothing to
size, and ``decide`` returns None whatever the mode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from mirrorscale.allocator import post, snapshot
from mirrorscale.allocator.estimate import SHADOW_MAX_AGE, MemoryEstimate, choose, oom_bump
from mirrorscale.allocator.history import WINDOW, TaskModel
from mirrorscale.allocator.plan import default_capacity, plan
from mirrorscale.policy import TaskPolicy, format_bytes
from mirrorscale.predictors.methods import METHODS
from mirrorscale.store.models import Allocation, utcnow

TaskKey = tuple[str, str, str]
logger = logging.getLogger("mirrorscale.allocator")

SNAPSHOT_EVERY = 5
"""A decision stores the task's model snapshot once the model learned this many runs since the stored one."""


@dataclass(frozen=True)
class Request:
    """One task run about to start, for :meth:`Allocator.decide_all`."""

    key: TaskKey
    run_id: str
    features: Mapping[str, Any] | None = None
    shadow: Any = None
    try_number: int = 1


class Allocator:
    """Sizes task runs before they start; keeps one incrementally refitted model per task in memory.

    ``store`` is a :class:`~mirrorscale.store.history.HistoryStore` and
    ``policies`` a :class:`~mirrorscale.policy.PolicySet`. ``capacity`` (bytes)
    is what :meth:`plan` may run at once (default: this machine's memory minus
    a reserve). ``route_by_size`` makes the size class the queue of tasks
    whose policy names none (only when workers listen on ``small``/``medium``/
    ``large``). ``use_stored_shadow``: without an explicit shadow, use the
    task's newest stored one when fresh (younger than ``shadow_max_age``).
    ``snapshot_every``: a decision writes the task's model snapshot once the
    model has learned this many runs since the stored one (0: never read or
    write snapshots; see :mod:`.snapshot`).
    """

    def __init__(self, store: Any, policies: Any, *, capacity: int | None = None, method: str = "mirrorscale",
                 route_by_size: bool = False, use_stored_shadow: bool = True,
                 shadow_max_age: timedelta = SHADOW_MAX_AGE, window: int = WINDOW,
                 snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.store = store
        self.policies = policies
        self.capacity = capacity
        self.method = method
        self.route_by_size = route_by_size
        self.use_stored_shadow = use_stored_shadow
        self.shadow_max_age = shadow_max_age
        self.window = window
        self.snapshot_every = snapshot_every
        self._models: dict[TaskKey, TaskModel] = {}
        self._workflows: dict[tuple[str, str], Any] = {}
        """What the sizers of one pipeline's tasks share (the method's ``new_workflow()``, e.g. a
        :class:`~mirrorscale.predictors.pool.WorkflowPool` of first-retry overshoots), per process."""
        self._unsaved: dict[TaskKey, int] = {}
        """Runs each cached model learned since its stored snapshot."""
        self._replace: set[TaskKey] = set()
        """Tasks whose stored snapshot was unreadable (overwritten at the next checkpoint)."""
        self._snapshot_failed = False

    # -- aggregate state ---------------------------------------------------

    def model(self, key: TaskKey) -> TaskModel:
        """The task's model, fed with the traces recorded since the last call.

        The first call in a process restores the task's stored snapshot (see
        :mod:`.snapshot`) and feeds the runs from its watermark on; without a
        usable one it fits the newest ``window`` runs.
        """
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = self._restore(key) or TaskModel(method=self.method)
            self._unsaved.setdefault(key, 0)
            self._share(key, model)
        while True:
            rows = self.store.traces_since(key, model.last_started, limit=self.window)
            fresh = model.feed(rows)
            self._unsaved[key] = self._unsaved.get(key, 0) + fresh
            if len(rows) < self.window or not fresh or model.last_started is None:
                return model

    def _share(self, key: TaskKey, model: TaskModel) -> None:
        """Join the model's sizer to what its pipeline's sizers share, as replay does per workflow.

        For ``mirrorscale``: every first OOM kill of a task that later succeeds
        reports how far the run overshot the killed attempt, and a first retry
        of any task of the pipeline steps to such an overshoot when that is
        cheaper in expectation than its own rule. Kept in memory: a new
        process starts with the prior alone.
        """
        if not hasattr(model.sizer, "share"):
            return
        pipeline = (key[0], key[1])
        if pipeline not in self._workflows:
            self._workflows[pipeline] = METHODS[self.method].new_workflow()
        if (shared := self._workflows[pipeline]) is not None:
            model.sizer.share(shared)

    def forget(self, key: TaskKey | None = None) -> None:
        """Drop the model of ``key`` (of every task when None), cached and stored; the next decision refits it."""
        if key is None:
            self._models.clear()
            self._unsaved.clear()
        else:
            self._models.pop(key, None)
            self._unsaved.pop(key, None)
        if self._snapshots():
            self.store.drop_models(key, self.method)

    def checkpoint(self, key: TaskKey) -> bool:
        """Write the snapshot of task ``key``'s cached model when it is due (see :mod:`.snapshot`); True if written.

        Never raises: a store that cannot take it costs one warning per
        allocator and a refit in the next process.
        """
        model = self._models.get(key)
        if model is None or not self._snapshots() or self._unsaved.get(key, 0) < self.snapshot_every:
            return False
        try:
            written = snapshot.save(self.store, key, model, replace=key in self._replace)
        except Exception as exc:  # noqa: BLE001 - a cache: the decision stands without it
            if not self._snapshot_failed:
                logger.warning("mirrorscale: could not store the model of %s.%s (%s: %s); the next process "
                               "refits it", key[1], key[2], type(exc).__name__, exc)
            self._snapshot_failed = True
            return False
        self._unsaved[key] = 0
        self._replace.discard(key)
        return written

    def _snapshots(self) -> bool:
        return self.snapshot_every > 0 and hasattr(self.store, "load_model")

    def _restore(self, key: TaskKey) -> TaskModel | None:
        if not self._snapshots():
            return None
        try:
            model, stored = snapshot.load(self.store, key, self.method)
        except Exception as exc:  # noqa: BLE001 - refit instead
            if not self._snapshot_failed:
                logger.warning("mirrorscale: could not read the stored model of %s.%s (%s: %s); refitting it",
                               key[1], key[2], type(exc).__name__, exc)
            self._snapshot_failed = True
            return None
        if model is None and stored:
            self._replace.add(key)
        return model

    # -- decisions ---------------------------------------------------------

    def decide(self, key: TaskKey, run_id: str, *, features: Mapping[str, Any] | None = None, shadow: Any = None,
               try_number: int = 1, save: bool = True) -> Allocation | None:
        """The :class:`Allocation` for one run of task ``key`` (see the module docstring for modes).

        ``features``: ``input_size_bytes`` (the run's input size; when absent, the
        latest run's is assumed and the reason says so), ``critical_path``
        (bool: doubles the priority), ``on_path`` (False: the task is off the
        predicted path, so no shadow is used). ``save=False`` leaves storing to
        the caller (:meth:`decide_all` stores after planning).
        """
        features = dict(features or {})
        policy: TaskPolicy = self.policies.for_task(key[1], key[2])
        estimate = self._estimate(key, run_id, features, shadow)
        if estimate is None:
            return None
        allocation = self._allocation(policy, estimate, run_id, try_number, features)
        if save and policy.mode != "observe":
            self.store.save(key, allocation)
        if save:
            self.checkpoint(key)
        return allocation

    def _estimate(self, key: TaskKey, run_id: str, features: dict[str, Any], shadow: Any) -> MemoryEstimate | None:
        model = self.model(key)
        policy: TaskPolicy = self.policies.for_task(key[1], key[2])
        input_size = features.get("input_size_bytes")
        assumed = input_size is None and model.last_input_size is not None
        input_size = model.last_input_size if assumed else input_size
        history = model.estimate(None if input_size is None else float(input_size))
        if assumed and history.memory_bytes is not None:
            history = replace(history, reason=f"{history.reason}; input size not given: the latest run's "
                                              f"{format_bytes(input_size)}")
        off_path = features.get("on_path") is False
        if shadow is None and self.use_stored_shadow and not off_path:
            shadow = self.store.latest_shadow(key)
        estimate = choose(history, None if off_path else shadow, utcnow(), max_age=self.shadow_max_age,
                          default_memory=policy.default_memory)
        if estimate is not None and off_path:
            estimate = MemoryEstimate(estimate.memory_bytes, estimate.source, estimate.text
                                      + "; off the predicted path: history only", None,
                                      estimate.cpu, estimate.wall_seconds)
        return oom_bump(estimate, model, run_id, input_size)

    def _allocation(self, policy: TaskPolicy, estimate: MemoryEstimate, run_id: str, try_number: int,
                    features: Mapping[str, Any]) -> Allocation:
        padded = post.with_headroom(estimate.memory_bytes, policy)
        memory, bounded = post.within_bounds(padded, policy)
        slots, pool_text = post.pool_phrase(memory, policy)
        cpu = post.cpu_request(estimate.cpu, policy)
        priority = post.priority_weight(memory, estimate.wall_seconds, policy,
                                        critical_path=bool(features.get("critical_path")))
        reason = (f"{estimate.text} (+{policy.headroom:.0%} headroom) = {format_bytes(padded)}, {bounded}; "
                  f"{pool_text}; cpu {cpu if cpu is not None else '-'}; priority {priority}")
        return Allocation(
            run_id=run_id, try_number=try_number, created_at=utcnow(), mode=policy.mode,
            applied=policy.mode == "enforce", memory_bytes=memory, cpu=cpu, pool=policy.pool, pool_slots=slots,
            priority_weight=priority, queue=post.queue_for(memory, policy, route_by_size=self.route_by_size),
            executor_options={"size_class": post.size_class(memory), "estimate_bytes": estimate.memory_bytes},
            source=estimate.source, reason=reason, shadow_id=estimate.shadow_id)

    # -- planning across tasks ---------------------------------------------

    def plan(self, decisions: Sequence[Allocation], capacity: int | None = None) -> list[Allocation]:
        """:func:`~mirrorscale.allocator.plan.plan` with ``capacity``, else the allocator's, else the machine's."""
        return plan(decisions, capacity or self.capacity or default_capacity())

    def decide_all(self, requests: Iterable[Request], capacity: int | None = None) -> list[Allocation | None]:
        """Decide every request, plan them against the capacity, then store those not in mode observe."""
        requests = list(requests)
        decided = [self.decide(r.key, r.run_id, features=r.features, shadow=r.shadow, try_number=r.try_number,
                               save=False) for r in requests]
        self.plan([a for a in decided if a is not None], capacity)
        for request, allocation in zip(requests, decided):
            if allocation is not None and allocation.mode != "observe":
                self.store.save(request.key, allocation)
        for key in dict.fromkeys(r.key for r in requests):
            self.checkpoint(key)
        return decided
