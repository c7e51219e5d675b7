"""Traces relayed by workers that cannot reach the store: the api-server stores them in its own store.

``POST /mirrorscale/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/trace``
(mounted by :func:`mirrorscale.plugins.airflow.web.create_airflow_app`, which
also guards it: ``PUT`` on the DAG's task instances) takes one
:class:`RelayedTrace`, the JSON the listener would have written itself
(:func:`mirrorscale.plugins.airflow.relay.payload`). Validation is strict:
known fields only, JSON types as declared (no ``"5"`` for 5, no ``true`` for 1),
bounded numbers and strings, ids as Airflow allows them, at most
:data:`MAX_FEATURES` features and :data:`MAX_SAMPLES` samples; anything else is
a 422 that names the field, and nothing is stored. The task instance must
exist in Airflow's metadata database (404 otherwise).

The answer is ``{"stored": true, "trace_id": n}``, or ``{"stored": false}``
when this (task, run, try) was already stored: the store's unique key makes
posting twice harmless, so a worker may retry freely. The stored trace keeps
``source = "airflow-listener"`` and gets ``features["relayed"] = True``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mirrorscale.store.models import OUTCOMES

__all__ = ["MAX_BODY_BYTES", "MAX_FEATURES", "MAX_SAMPLES", "RelayedTrace", "TraceSamplesIn", "feature_problem",
           "record_relayed", "relayable_features", "trace_route"]

MAX_BODY_BYTES = 256 * 1024
"""Largest request body the plugin's app reads (any POST): a trace is a few KiB."""
MAX_FEATURES = 100
"""Most features one relayed trace may carry."""
MAX_FEATURES_BYTES = 16 * 1024
"""Largest size of a relayed trace's features as JSON."""
MAX_SAMPLES = 2048
"""Most samples per series (the monitor keeps 512)."""
MAX_BYTES = 2**53
"""Upper bound of every byte count (8 PiB)."""
MAX_SECONDS = 1e8
"""Upper bound of CPU and wall seconds (~3 years)."""

KEY_PATTERN = r"^[\w.-]+$"
"""Airflow's own pattern for DAG and task ids (``airflow.utils.helpers.KEY_REGEX``)."""
_NAME_PATTERN = r"^[\w.:+~ -]+$"
_FEATURE_KEY = re.compile(r"^[\w.:-]{1,100}$")

Bytes = Annotated[int, Field(strict=True, ge=0, le=MAX_BYTES)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Scalar = (bool, int, float, str, type(None))

DagIdPath = Annotated[str, Path(min_length=1, max_length=250, pattern=KEY_PATTERN)]
TaskIdPath = Annotated[str, Path(min_length=1, max_length=250, pattern=KEY_PATTERN)]
RunIdPath = Annotated[str, Path(min_length=1, max_length=250)]


def feature_problem(key: str, value: Any) -> str | None:
    """Why one feature cannot be relayed (None: it can): its name, type and size are bounded."""
    if not isinstance(key, str) or not _FEATURE_KEY.match(key):
        return f"feature name {str(key)[:40]!r} must be 1-100 letters, digits or _ . : -"
    if not isinstance(value, Scalar):
        return f"feature {key!r} must be a string, number, boolean or null"
    if isinstance(value, float) and not math.isfinite(value):
        return f"feature {key!r} must be finite"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_BYTES:
        return f"feature {key!r} is out of range (|value| <= 2**53)"
    if isinstance(value, str) and len(value) > 500:
        return f"feature {key!r} is longer than 500 characters"
    return None


def relayable_features(features: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The features the endpoint takes (in order, within its count and size limits) and the names left out.

    The worker relays the rest of its trace rather than lose it for one odd parameter
    (a huge integer, a NaN, a long string); the names left out are stored with it.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    size = 2
    for key, value in features.items():
        entry = len(json.dumps({key: value}, default=str)) if feature_problem(key, value) is None else None
        if entry is None or len(kept) >= MAX_FEATURES - 1 or size + entry > MAX_FEATURES_BYTES - 600:
            dropped.append(str(key))
            continue
        kept[key] = value
        size += entry
    return kept, dropped


class TraceSamplesIn(BaseModel):
    """The bounded resource time series of one trace, as parallel arrays of equal length."""

    model_config = ConfigDict(extra="forbid")

    t_seconds: list[Seconds] = Field(default_factory=list, max_length=MAX_SAMPLES)
    rss_bytes: list[Bytes] = Field(default_factory=list, max_length=MAX_SAMPLES)
    cpu_seconds: list[Seconds] = Field(default_factory=list, max_length=MAX_SAMPLES)

    @model_validator(mode="after")
    def _same_length(self) -> TraceSamplesIn:
        if not len(self.t_seconds) == len(self.rss_bytes) == len(self.cpu_seconds):
            raise ValueError("t_seconds, rss_bytes and cpu_seconds must have the same length")
        return self


class RelayedTrace(BaseModel):
    """One :class:`~mirrorscale.store.models.ExecutionTrace` as a worker relays it (ids come from the path)."""

    model_config = ConfigDict(extra="forbid")

    map_index: int = Field(default=-1, strict=True, ge=-1, le=1_000_000)
    try_number: int = Field(default=1, strict=True, ge=1, le=10_000)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    outcome: Literal[OUTCOMES] = "success"  # type: ignore[valid-type]
    peak_rss_bytes: Bytes | None = None
    cpu_seconds: Seconds | None = None
    wall_seconds: Seconds | None = None
    read_bytes: Bytes | None = None
    write_bytes: Bytes | None = None
    input_size_bytes: Bytes | None = None
    branch: str | None = Field(default=None, max_length=250, pattern=r"^[\w.,-]*$")
    allocated_pool: str | None = Field(default=None, min_length=1, max_length=250, pattern=_NAME_PATTERN)
    allocated_pool_slots: int | None = Field(default=None, strict=True, ge=0, le=1_000_000)
    allocated_memory_bytes: Bytes | None = None
    allocated_cpu: float | None = Field(default=None, strict=True, ge=0, le=100_000, allow_inf_nan=False)
    features: dict[str, Any] = Field(default_factory=dict, max_length=MAX_FEATURES)
    samples: TraceSamplesIn | None = None

    @field_validator("features")
    @classmethod
    def _plain_features(cls, features: dict[str, Any]) -> dict[str, Any]:
        for key, value in features.items():
            problem = feature_problem(key, value)
            if problem is not None:
                raise ValueError(problem)
        if len(json.dumps(features)) > MAX_FEATURES_BYTES:
            raise ValueError(f"features are larger than {MAX_FEATURES_BYTES} bytes as JSON")
        return features

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at: datetime | None, info: ValidationInfo) -> datetime | None:
        started_at = info.data.get("started_at")
        if ended_at is not None and started_at is not None and ended_at < started_at:
            raise ValueError("ended_at is before started_at")
        return ended_at


def _bad_path(name: str, message: str, value: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the path parameter."""
    return HTTPException(status_code=422, detail=[{"type": "value_error", "loc": ["path", name],
                                                   "msg": message, "input": value[:100]}])


def check_run_id(run_id: str) -> None:
    """Raise a 422 unless Airflow itself would accept ``run_id`` (``DagRun.validate_run_id``'s rules)."""
    from airflow.configuration import conf
    from airflow.models.dagrun import RUN_ID_REGEX

    if ".." in run_id:
        raise _bad_path("run_id", "must not contain '..'", run_id)
    allowed = (conf.get("scheduler", "allowed_run_id_pattern", fallback="") or "").strip()
    if not (re.match(RUN_ID_REGEX, run_id) or (allowed and re.match(allowed, run_id))):
        raise _bad_path("run_id", f"does not match Airflow's run id patterns ({allowed!r})", run_id)


def trace_route(dag_id: DagIdPath, run_id: RunIdPath, task_id: TaskIdPath, body: RelayedTrace) -> dict[str, Any]:
    """The route: validate the path's ids, then :func:`record_relayed`."""
    check_run_id(run_id)
    try:
        return record_relayed(dag_id, run_id, task_id, body)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def record_relayed(dag_id: str, run_id: str, task_id: str, trace: RelayedTrace) -> dict[str, Any]:
    """Store one relayed trace in the api-server's store; ``{"stored": bool, "trace_id": id | None}``."""
    from mirrorscale.plugins.airflow.listener import SOURCE, _store
    from mirrorscale.store.models import TraceSamples

    store_run = run_id if trace.map_index < 0 else f"{run_id}#{trace.map_index}"
    if len(store_run) > 250:
        raise _bad_path("run_id", "with its map index, longer than 250 characters", run_id)
    _task_instance_exists(dag_id, run_id, task_id, trace.map_index)
    columns = trace.model_dump(exclude={"map_index", "samples", "features", "started_at"})
    samples = None if trace.samples is None else TraceSamples(**trace.samples.model_dump())
    try:
        trace_id = _store().record_trace(
            engine="airflow", pipeline_id=dag_id, task_id=task_id, run_id=store_run, started_at=trace.started_at,
            samples=samples, source=SOURCE, features={**trace.features, "relayed": True}, **columns)
    except Exception as exc:  # noqa: BLE001 - the worker keeps its warning; say why
        raise HTTPException(status_code=503, detail=f"the api-server's store failed: {type(exc).__name__}") from None
    return {"stored": trace_id is not None, "trace_id": trace_id}


def _task_instance_exists(dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
    """Raise ``LookupError`` unless Airflow knows this task instance."""
    from sqlalchemy import select

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.scalar(select(TaskInstance.task_id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index))
    if found is None:
        raise LookupError(f"no task instance {dag_id}.{task_id} in run {run_id} (map index {map_index})")


class BodyCap:
    """ASGI middleware: a POST body larger than ``limit`` bytes gets 413 before anything parses it."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Refuse a too large declared length at once; count the bytes of a body sent without one."""
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b"")) if message.get("type") == "http.request" else 0
            if seen > self.limit:
                raise HTTPException(status_code=413, detail=f"request body larger than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
