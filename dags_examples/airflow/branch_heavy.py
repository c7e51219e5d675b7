"""Example: a branch whose heavy side is predicted (mirrorscale example DAG).

``choose`` (a ``BranchPythonOperator``) sends the run down ``full_rebuild``
(memory-heavy) on the first day of the month, when ``force_full`` is set, or
when the day's ``rows`` exceed ``full_threshold``; otherwise down the cheap
``incremental``. mirrorscale records the branch each run took (``branch`` of
``choose``'s trace), so the path predictor can learn it from the context
(day of month, params) and size ``full_rebuild`` before the run gets there.

Run it::

    airflow dags test ms_branch_heavy                               # usually incremental
    airflow dags test ms_branch_heavy -c '{"force_full": true}'     # heavy side
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import dag, task


def choose_branch(params: dict, logical_date: pendulum.DateTime | None = None, **_: object) -> str:
    """``full_rebuild`` on the 1st, when forced, or for a big day; else ``incremental``."""
    day = logical_date or pendulum.now("UTC")
    heavy = bool(params.get("force_full")) or day.day == 1 or int(params["rows"]) > int(params["full_threshold"])
    return "full_rebuild" if heavy else "incremental"


@dag(
    dag_id="ms_branch_heavy",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"rows": 5000, "full_threshold": 50000, "force_full": False, "full_mb": 32},
    tags=["mirrorscale", "example"],
    doc_md=__doc__,
)
def ms_branch_heavy() -> None:
    choose = BranchPythonOperator(task_id="choose", python_callable=choose_branch)

    @task
    def incremental(params: dict | None = None) -> int:
        """Touch only today's rows (cheap)."""
        return sum(range(int(params["rows"])))

    @task
    def full_rebuild(params: dict | None = None) -> int:
        """Rebuild everything in memory (heavy: ``full_mb`` MiB held at once)."""
        block = bytearray(int(params["full_mb"]) << 20)
        for i in range(0, len(block), 4096):  # touch every page so it is really resident
            block[i] = 1
        return len(block)

    @task(trigger_rule="none_failed_min_one_success")
    def publish() -> str:
        """Runs after whichever side was taken."""
        return "published"

    choose >> [incremental(), full_rebuild()] >> publish()


ms_branch_heavy()
