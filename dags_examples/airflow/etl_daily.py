"""Example: a daily ETL whose input grows and shrinks (mirrorscale example DAG).

``extract`` produces ``rows`` records; the row count follows a weekly wave
around ``base_rows`` (``amplitude`` sets its depth) so the input size of
``transform`` and ``load`` changes from day to day, the way real feeds do.
mirrorscale's listener records each task with its input size (the XCom it
pulled), so the history shows cost tracking input.

Run it::

    airflow dags test ms_etl_daily                                  # today's size
    airflow dags test ms_etl_daily -c '{"base_rows": 20000}'        # a bigger day

Policy idea (``mirrorscale.toml``)::

    [tasks."ms_etl_daily.*"]
    features = ["base_rows"]
"""

from __future__ import annotations

import math

import pendulum
from airflow.sdk import dag, get_current_context, task


def rows_for(day: pendulum.DateTime, base_rows: int, amplitude: float) -> int:
    """The row count of ``day``: a weekly wave around ``base_rows`` (never below 1)."""
    wave = math.sin(2 * math.pi * (day.day_of_year % 7) / 7)
    return max(1, int(base_rows * (1 + amplitude * wave)))


@dag(
    dag_id="ms_etl_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"base_rows": 2000, "amplitude": 0.6},
    tags=["mirrorscale", "example"],
    doc_md=__doc__,
)
def ms_etl_daily() -> None:
    @task
    def extract() -> list[dict]:
        """Pretend to read today's records."""
        context = get_current_context()
        params = context["params"]
        day = context.get("logical_date") or pendulum.now("UTC")
        n = rows_for(day, int(params["base_rows"]), float(params["amplitude"]))
        return [{"id": i, "amount": (i * 37) % 1000 / 10, "note": "x" * (i % 17)} for i in range(n)]

    @task
    def transform(records: list[dict]) -> list[dict]:
        """Enrich every record (cost grows with the input)."""
        return [{**r, "amount_eur": round(r["amount"] * 0.92, 2), "bucket": r["id"] % 10} for r in records]

    @task
    def load(records: list[dict]) -> dict:
        """Aggregate and 'write' the result."""
        totals: dict[int, float] = {}
        for r in records:
            totals[r["bucket"]] = totals.get(r["bucket"], 0.0) + r["amount_eur"]
        return {"rows": len(records), "buckets": len(totals)}

    load(transform(extract()))


ms_etl_daily()
