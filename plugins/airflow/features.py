"""Input features of one Airflow task run, read in the task's own process.

:func:`task_features` turns a running task instance into the ``features`` dict
of its :class:`~mirrorscale.store.models.ExecutionTrace`:

=========================  ==================================================
key                        value
=========================  ==================================================
``args_bytes``             estimated size of the callable's ``op_args`` + ``op_kwargs``
                           (after rendering, so resolved XComs are included)
``xcom_bytes``             the part of it that came from upstream XComs (``XComArg``)
``params_bytes``           estimated size of the DAG/task params
``hour``, ``weekday``      local hour (0-23) and weekday (0 = Monday) of the run's start
``map_index``              the mapped index (only for mapped tasks)
``operator``               the operator's class name
``param.<name>``           a param named by the policy's ``features`` (scalar value,
                           or length of a list/dict/string)
=========================  ==================================================

Sizes are :func:`mirrorscale.features.value_size` estimates, the same ones the
Prefect runner and the mirrors record. Nothing here may raise: a feature that
cannot be read is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mirrorscale.features import named_value, time_features, value_size

__all__ = ["task_features", "input_size", "policy_features"]


def _is_xcom_ref(value: Any) -> bool:
    """True for an unresolved ``XComArg`` (or anything that resolves from XCom)."""
    return type(value).__name__.endswith("XComArg") or hasattr(value, "resolve") and hasattr(value, "operator")


def _xcom_positions(original: Any) -> tuple[set[int] | None, set[str]]:
    """Which ``op_args`` indexes and ``op_kwargs`` keys were XCom references before rendering.

    ``None`` for the indexes means "all of ``op_args``" (``op_args`` itself was an
    XCom). For a mapped task the expanded arguments that come from an XCom count.
    """
    if original is None:
        return set(), set()
    keys: set[str] = set()
    for attr in ("op_kwargs_expand_input", "expand_input"):  # mapped: @task / classic operator
        mapped = getattr(getattr(original, attr, None), "value", None)
        if isinstance(mapped, Mapping):  # expand(x=upstream())
            keys |= {str(k) for k, v in mapped.items() if _is_xcom_ref(v)}
        elif mapped is not None and _is_xcom_ref(mapped):  # expand_kwargs(upstream())
            return None, {"*"}
    partial = getattr(original, "partial_kwargs", None) or {}
    args = getattr(original, "op_args", None) or partial.get("op_args") or ()
    kwargs = getattr(original, "op_kwargs", None) or partial.get("op_kwargs") or {}
    if _is_xcom_ref(args) or "op_args" in keys:
        positions: set[int] | None = None
    else:
        positions = {i for i, v in enumerate(args) if _is_xcom_ref(v)} if isinstance(args, (list, tuple)) else set()
    if _is_xcom_ref(kwargs) or "op_kwargs" in keys:
        keys.add("*")
    elif isinstance(kwargs, Mapping):
        keys |= {k for k, v in kwargs.items() if _is_xcom_ref(v)}
    return positions, keys


def _original_task(ti: Any) -> Any:
    """The DAG's own (unrendered) operator of ``ti``, or None."""
    try:
        return ti.task.dag.get_task(ti.task_id)
    except Exception:  # noqa: BLE001
        return None


def _arg_sizes(ti: Any) -> dict[str, int]:
    task = ti.task
    args = getattr(task, "op_args", None)
    kwargs = getattr(task, "op_kwargs", None)
    if args is None and kwargs is None:
        return {}
    args = list(args) if isinstance(args, (list, tuple)) else ([] if args is None else [args])
    kwargs = dict(kwargs) if isinstance(kwargs, Mapping) else {}
    kwargs = {k: v for k, v in kwargs.items() if not _is_context_value(k)}
    positions, keys = _xcom_positions(_original_task(ti))
    arg_sizes = [value_size(v) for v in args]
    kwarg_sizes = {k: value_size(v) for k, v in kwargs.items()}
    total = sum(arg_sizes) + sum(kwarg_sizes.values())
    xcom = sum(s for i, s in enumerate(arg_sizes) if positions is None or i in positions)
    xcom += sum(s for k, s in kwarg_sizes.items() if "*" in keys or k in keys)
    return {"args_bytes": total, "xcom_bytes": xcom}


_CONTEXT_KEYS = frozenset({"ti", "task_instance", "dag_run", "params", "task", "dag", "conf", "var", "macros"})


def _is_context_value(key: str) -> bool:
    return key in _CONTEXT_KEYS


def _params(ti: Any) -> dict[str, Any]:
    params = getattr(ti.task, "params", None)
    if params is None:
        return {}
    try:
        dump = getattr(params, "dump", None)
        return dict(dump()) if callable(dump) else dict(params)
    except Exception:  # noqa: BLE001
        return {}


def _dag_run_conf(ti: Any) -> dict[str, Any]:
    try:
        context = ti.get_template_context()
        conf = context["dag_run"].conf
        return dict(conf) if isinstance(conf, Mapping) else {}
    except Exception:  # noqa: BLE001
        return {}


def policy_features(names: tuple[str, ...] | list[str], sources: list[Mapping[str, Any]]) -> dict[str, Any]:
    """``param.<name>`` for each name the policy lists, from the first source that has it.

    Values go through :func:`mirrorscale.features.named_value` (numbers stay,
    containers become their length), as in the Prefect runner.
    """
    found: dict[str, Any] = {}
    for name in names:
        for source in sources:
            if name in source:
                found[f"param.{name}"] = named_value(source[name])
                break
    return found


def task_features(ti: Any, started_at: datetime, policy_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``features`` of one running task instance (see the module docstring)."""
    features: dict[str, Any] = {}
    features.update(time_features(started_at.astimezone()))
    features["operator"] = type(ti.task).__name__
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        features["map_index"] = map_index
    try:
        features.update(_arg_sizes(ti))
    except Exception:  # noqa: BLE001
        pass
    params = _params(ti)
    features["params_bytes"] = value_size(params)
    if policy_names:
        kwargs = getattr(ti.task, "op_kwargs", None)
        sources = [params, kwargs if isinstance(kwargs, Mapping) else {}, _dag_run_conf(ti)]
        features.update(policy_features(tuple(policy_names), sources))
    return features


def input_size(features: Mapping[str, Any]) -> int | None:
    """The trace's ``input_size_bytes``: the callable's arguments, else the params."""
    if "args_bytes" in features:
        return int(features["args_bytes"])
    value = features.get("params_bytes")
    return int(value) if value is not None else None
