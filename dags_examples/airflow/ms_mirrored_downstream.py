"""Example: a volatile downstream task mirrored and sized while it waits (mirrorscale example DAG).

``produce`` returns ``kib`` KiB of text; ``crunch`` expands it 1000 times in
memory, so its peak follows the day's input. ``crunch`` also waits for
``prepare`` (a second, slower upstream), so it is still waiting when
``produce`` finishes. With the policy::

    [tasks."ms_mirrored_downstream.crunch"]
    mode = "enforce"
    mirror = true
    pool = "mirrorscale_memory"
    pool_slot_memory = "64MiB"

``produce``'s task process, right after ``produce`` returns and before Airflow
reports it successful, runs ``crunch``'s own callable on samples of the text
(a mirror; its callable lives in the importable :mod:`ms_workloads`), stores
the shadow and posts it to mirrorscale's endpoint on the api-server, which
sets the waiting ``crunch`` instance's ``pool_slots`` and ``executor_config``
from the mirror before it starts. Workers need credentials for the api-server
(``MIRRORSCALE_AIRFLOW_API_USER``/``_PASSWORD`` or ``_TOKEN``); without them,
or with the api-server unreachable, ``crunch`` keeps its own settings and one
warning is logged.

Run it::

    airflow dags test ms_mirrored_downstream -c '{"kib": 120}'

``prepare`` waits until ``release_file`` exists or ``hold`` seconds passed
(the end-to-end test holds ``crunch`` back with it).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

import ms_workloads


@dag(
    dag_id="ms_mirrored_downstream",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"kib": 40, "hold": 0, "release_file": ""},
    tags=["mirrorscale", "example"],
)
def ms_mirrored_downstream():
    @task
    def produce(params=None):
        """The day's input: text whose size varies from run to run."""
        return ms_workloads.make_text(int(params["kib"]))

    @task
    def prepare(params=None):
        """A slower upstream (e.g. waiting for a partner's file)."""
        return ms_workloads.hold(params.get("release_file") or None, float(params["hold"]))

    crunch = task(task_id="crunch")(ms_workloads.crunch)
    prepare() >> crunch(produce())


ms_mirrored_downstream()
