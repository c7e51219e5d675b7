"""Cluster placement: hand a run's allocation to Dask or Ray when the task is submitted.

With a cluster runner inside :class:`~mirrorscale.plugins.prefect.PredictiveTaskRunner`,
the cluster's own scheduler does the memory admission: an enforce-mode run is sized
at submit time (from its resolved parameters) and submitted with its allocation as

====================  ==========================================================
inner runner          what the run is submitted with
====================  ==========================================================
``DaskTaskRunner``    ``dask.annotate(resources={resource: memory_bytes})`` (only
                      with ``dask_resource=...``: the workers declare that resource
                      in bytes, e.g. ``cluster_kwargs={"resources": {"MEMORY": 8e9}}``)
``RayTaskRunner``     ``prefect_ray.context.remote_options(memory=memory_bytes,
                      num_cpus=cpu)``: Ray's own ``memory`` and ``CPU`` resources
                      (``num_cpus`` only when the allocation names a CPU request;
                      Ray's default of 1 core applies otherwise)
====================  ==========================================================

A need larger than the largest worker/node is capped at it (the run then has the
worker to itself instead of never starting). Without any worker declaring the
resource, runs are submitted unannotated and one warning is logged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from mirrorscale.plugins.prefect.admission import Admission

__all__ = ["DaskPlacement", "RayPlacement", "placement_for"]


def _warn(key: str, message: str, *args: Any) -> None:
    from mirrorscale.plugins.prefect.measure import warn_once

    warn_once(key, message, *args)


class DaskPlacement:
    """Memory as the Dask worker resource ``resource`` (counted in bytes)."""

    via = "dask-resources"

    def __init__(self, client: Any, resource: str) -> None:
        self.client = client
        self.resource = resource

    def admission(self, need_bytes: int | None, cpu: float | None, reason: str) -> Admission | None:
        """The annotation for a run needing ``need_bytes`` (None: not annotated)."""
        if need_bytes is None:
            return None
        workers = self.client.scheduler_info().get("workers", {}).values()
        largest = max((float(w.get("resources", {}).get(self.resource, 0)) for w in workers), default=0.0)
        if largest <= 0:
            _warn(f"dask:{self.resource}", "mirrorscale: no Dask worker declares the resource %r; "
                  "tasks are submitted without memory annotations", self.resource)
            return None
        units = max(1, min(int(largest), int(need_bytes)))
        return Admission(limit=self.resource, units=units, unit_bytes=1, reason=reason, via=self.via,
                         memory_bytes=int(need_bytes))

    @contextmanager
    def options(self, admission: Admission) -> Iterator[None]:
        """Submit inside this block to carry ``admission`` as a Dask resource annotation."""
        import dask

        with dask.annotate(resources={admission.limit: admission.units}):
            yield


class RayPlacement:
    """Memory and CPU as Ray's ``memory`` and ``num_cpus`` task options.

    The nodes' resources are read once per placement (one flow run).
    """

    via = "ray-options"

    def __init__(self) -> None:
        self._largest: tuple[float, float] | None = None

    def _largest_node(self) -> tuple[float, float]:
        if self._largest is None:
            import ray

            nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", n.get("alive"))]
            self._largest = (max((float(r.get("memory", 0)) for r in nodes), default=0.0),
                             max((float(r.get("CPU", 0)) for r in nodes), default=0.0))
        return self._largest

    def admission(self, need_bytes: int | None, cpu: float | None, reason: str) -> Admission | None:
        """The Ray options for a run needing ``need_bytes`` and ``cpu`` cores (None: not set)."""
        if need_bytes is None:
            return None
        memory, cores = self._largest_node()
        if memory <= 0:
            _warn("ray:memory", "mirrorscale: no Ray node reports a memory resource; tasks are submitted "
                  "without memory options")
            return None
        units = max(1, min(int(memory), int(need_bytes)))
        num_cpus = min(float(cpu), cores) if cpu and cores > 0 else None
        return Admission(limit="memory", units=units, unit_bytes=1, reason=reason, via=self.via,
                         memory_bytes=int(need_bytes), cpu=num_cpus)

    @contextmanager
    def options(self, admission: Admission) -> Iterator[None]:
        """Submit inside this block to pass ``admission`` as Ray remote options."""
        from prefect_ray.context import remote_options

        extra = {"num_cpus": admission.cpu} if admission.cpu is not None else {}
        with remote_options(memory=admission.units, **extra):
            yield


def placement_for(inner: Any, dask_resource: str | None) -> DaskPlacement | RayPlacement | None:
    """The placement for the (started) inner runner: Ray always; with ``dask_resource``, a runner with a Dask
    ``client``; else None (memory admission by the global concurrency limit)."""
    module = type(inner).__module__
    if module.startswith("prefect_ray"):
        return RayPlacement()
    if dask_resource:
        client = getattr(inner, "client", None)
        if client is not None:
            return DaskPlacement(client, dask_resource)
    return None
