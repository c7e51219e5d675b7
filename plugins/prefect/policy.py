"""Per-task policies for Prefect tasks: the policy files, plus a decorator for code.

Tasks are named ``"flow_name.task_name"`` (the flow's and the task's ``name``), so the
same files that configure Airflow tasks configure Prefect ones::

    [tool.mirrorscale.tasks."growing-etl.transform"]
    features = ["n_rows"]
    mode = "recommend"

In code, :func:`mirrorscale_policy` sets fields for one task; put it above or below
``@task``::

    @mirrorscale_policy(features=["n_rows"], memory={"max_allowed": "2GiB"})
    @task
    def transform(rows, n_rows): ...

Precedence, lowest first: built-in defaults, the file's top-level keys, the decorator,
the file's patterns for the task, the ``MIRRORSCALE_*`` kill switches. So an operator's
file can still override what the code says, and the kill switches win over both.
The policy travels on the task's function, so ``task.with_options(...)`` keeps it.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from mirrorscale.policy import PolicyError, PolicySet, TaskPolicy

__all__ = ["POLICY_ATTRIBUTE", "code_policy", "mirrorscale_policy", "resolve_policy"]

POLICY_ATTRIBUTE = "__mirrorscale_policy__"
"""Attribute on a task's function that holds the :class:`TaskPolicy` set in code."""
_BOUND_FIELDS = ("memory", "cpu", "priority")

T = TypeVar("T")


def mirrorscale_policy(**fields: Any) -> Callable[[T], T]:
    """Decorator setting policy fields (those of :class:`~mirrorscale.policy.TaskPolicy`) for a task.

    Works on a Prefect ``Task`` or on the plain function before ``@task``. Invalid
    fields raise :class:`~mirrorscale.policy.PolicyError` at decoration time.
    """
    policy = PolicySet.from_mapping(fields, label="@mirrorscale_policy", environ={}).defaults

    def decorate(target: T) -> T:
        fn = getattr(target, "fn", target)  # a prefect Task keeps its function in .fn
        setattr(fn, POLICY_ATTRIBUTE, policy)
        return target

    return decorate


def code_policy(task: Any) -> TaskPolicy | None:
    """The policy set in code for ``task`` (a Prefect ``Task`` or a function), if any."""
    fn = getattr(task, "fn", task)
    policy = getattr(fn, POLICY_ATTRIBUTE, None)
    return policy if isinstance(policy, TaskPolicy) else None


def resolve_policy(policies: PolicySet, flow_name: str, task_name: str, task: Any = None) -> TaskPolicy:
    """The effective policy of ``flow_name.task_name``; see the module docstring for precedence."""
    in_code = code_policy(task) if task is not None else None
    if in_code is None:
        return policies.for_task(flow_name, task_name)
    layers = [policies.defaults, in_code]
    layers += [rule.policy for rule in policies.matching_rules(flow_name, task_name)]
    layers.append(policies.overrides)
    merged: dict[str, Any] = TaskPolicy().model_dump()
    for layer in layers:
        for name, value in layer.model_dump(exclude_unset=True).items():
            merged[name] = {**merged[name], **value} if name in _BOUND_FIELDS else value
    try:
        return TaskPolicy.model_validate(merged)
    except Exception as exc:  # noqa: BLE001 - report it like a file error
        raise PolicyError([f"{flow_name}.{task_name}: {exc}"], source="@mirrorscale_policy + policy file") from None
