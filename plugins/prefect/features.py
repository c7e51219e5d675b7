"""Input features of one Prefect task run, in the same shape as the Airflow plugin's.

Prefect records no parameters itself, so mirrorscale describes the resolved call
parameters when the task starts, with the engine-neutral size estimate of
:mod:`mirrorscale.features` (the one the mirrors use too)::

    {"args_bytes": 80056,                         # all parameters together (= input_size_bytes)
     "arg_bytes.rows": 80056, "arg_bytes.n": 0,   # each parameter (scalars carry no data: 0)
     "param.n_rows": 10000,                       # parameters the task's policy names
     "hour": 14, "weekday": 2}                    # local time of the start (Monday = 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mirrorscale.features import named_value, time_features, value_size

__all__ = ["task_features"]


def task_features(parameters: Mapping[str, Any], named: Iterable[str], started_at: datetime) -> tuple[dict[str, Any], int]:
    """The features of one task run and its input size in bytes.

    ``parameters`` are the resolved call parameters by name, ``named`` the parameter
    names the task's policy lists (``features = ["n_rows"]``), ``started_at`` an
    aware datetime.
    """
    sizes = {name: value_size(value) for name, value in parameters.items()}
    total = sum(sizes.values())
    features: dict[str, Any] = {"args_bytes": total}
    features.update({f"arg_bytes.{name}": size for name, size in sizes.items()})
    features.update({f"param.{name}": named_value(parameters[name]) for name in named if name in parameters})
    features.update(time_features(started_at.astimezone()))
    return features, total
