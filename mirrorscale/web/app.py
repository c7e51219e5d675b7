"""The engine-neutral FastAPI app: per-task history, forecast vs. actual, allocations.

:func:`create_app` builds it; an engine plugin mounts it and passes its own
authentication as ``dependencies`` (applied to every route, so no page or
API answers without them). Routes (relative to the mount point):

=========================================================  ======================================
``GET /``                                                  every recorded task (HTML)
``GET /pipelines/{pipeline_id}[?run_id=]``                 the tasks of one pipeline (HTML)
``GET /pipelines/{pipeline_id}/tasks/{task_id}[?run_id=]`` plot, runs, allocations, shadows (HTML;
                                                           the run's rows highlighted)
``GET /pipelines/{pipeline_id}/tasks/{task_id}/plot.svg``  the plot alone (SVG)
``GET /api/pipelines/{pipeline_id}/tasks/{task_id}``       the runs with their forecasts (JSON)
=========================================================  ======================================

Path parameters are named ``pipeline_id``/``task_id`` whatever the engine; an
engine's access check reads them from ``request.path_params``. Ids may hold
``/`` (Prefect task names, slashed DAG ids): servers decode ``%2F`` before
routing, so both parameters match across slashes. The more specific routes
are declared first (``.../plot.svg`` before the task page, every task route
before the pipeline page), so the pipeline page never swallows a task URL.
Only an id that itself holds ``/tasks/`` or ends in ``/plot.svg`` cannot be
told apart from those routes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, Response

from mirrorscale.store.history import HistoryStore

__all__ = ["create_app"]


def create_app(*, dependencies: Sequence[Depends] = (), engine: str | None = None,
               store_factory: Callable[[], HistoryStore] | None = None, title: str = "mirrorscale") -> FastAPI:
    """Build the web app.

    ``dependencies`` guard every route (e.g. Airflow's ``requires_access_*``);
    ``engine`` restricts the pages to one engine's tasks; ``store_factory``
    opens the history store (default :meth:`HistoryStore.open`, once, on first use).
    """
    app = FastAPI(title=title, dependencies=list(dependencies), docs_url=None, redoc_url=None, openapi_url=None)
    state: dict[str, Any] = {}

    def store() -> HistoryStore:
        if "store" not in state:
            state["store"] = (store_factory or HistoryStore.open)()
        return state["store"]

    def href_for(request: Request) -> Callable[[str], str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return lambda path: f"{root}{path}" if path != "/" else f"{root}/"

    def summaries(pipeline_id: str | None = None) -> list[Any]:
        found = store().task_summaries()
        return [s for s in found if (engine is None or s.engine == engine)
                and (pipeline_id is None or s.pipeline_id == pipeline_id)]

    def view(pipeline_id: str, task_id: str) -> Any:
        from mirrorscale.web.queries import load_task_view

        found = load_task_view(store(), pipeline_id, task_id, engine=engine)
        if found is None:
            raise HTTPException(404, f"no runs recorded for {escape(pipeline_id)}.{escape(task_id)}")  # ids echo escaped
        return found

    @app.get("/", response_class=HTMLResponse, name="mirrorscale_index")
    def index(request: Request) -> str:
        """Every recorded task."""
        from mirrorscale.web.pages import index_page

        return index_page(href_for(request), summaries())

    @app.get("/pipelines/{pipeline_id:path}/tasks/{task_id:path}/plot.svg", name="mirrorscale_plot")
    def plot(pipeline_id: str, task_id: str) -> Response:
        """The forecast-vs-actual plot as an SVG document."""
        from mirrorscale.web.pages import plot_points
        from mirrorscale.web.plots import forecast_vs_actual_svg

        found = view(pipeline_id, task_id)
        svg = forecast_vs_actual_svg(plot_points(found), title=f"{found.task.key}: peak memory per run")
        return Response(svg, media_type="image/svg+xml")

    @app.get("/pipelines/{pipeline_id:path}/tasks/{task_id:path}", response_class=HTMLResponse, name="mirrorscale_task")
    def task(request: Request, pipeline_id: str, task_id: str, run_id: str | None = None) -> str:
        """Forecast vs. actual, runs, allocations and shadows of one task (``?run_id=`` highlights a run)."""
        from mirrorscale.web.pages import task_page

        return task_page(href_for(request), view(pipeline_id, task_id), run_id=run_id)

    @app.get("/api/pipelines/{pipeline_id:path}/tasks/{task_id:path}", name="mirrorscale_task_json")
    def task_json(pipeline_id: str, task_id: str) -> dict[str, Any]:
        """The runs of one task with the forecast made for each."""
        found = view(pipeline_id, task_id)
        runs = []
        for t in found.traces:
            forecast = found.forecast_for(t.run_id)
            runs.append({
                "run_id": t.run_id, "try_number": t.try_number, "started_at": t.started_at.isoformat(),
                "outcome": t.outcome, "peak_rss_bytes": t.peak_rss_bytes, "cpu_seconds": t.cpu_seconds,
                "wall_seconds": t.wall_seconds, "input_size_bytes": t.input_size_bytes, "branch": t.branch,
                "allocated_memory_bytes": t.allocated_memory_bytes, "allocated_pool": t.allocated_pool,
                "allocated_pool_slots": t.allocated_pool_slots,
                "forecast_bytes": forecast.value if forecast else None,
            })
        return {"engine": found.task.engine, "pipeline_id": pipeline_id, "task_id": task_id, "runs": runs}

    @app.get("/pipelines/{pipeline_id:path}", response_class=HTMLResponse, name="mirrorscale_pipeline")
    def pipeline(request: Request, pipeline_id: str, run_id: str | None = None) -> str:
        """The tasks of one pipeline (``?run_id=`` is passed on to the task pages)."""
        from mirrorscale.web.pages import pipeline_page

        return pipeline_page(href_for(request), pipeline_id, summaries(pipeline_id), run_id=run_id)

    return app
