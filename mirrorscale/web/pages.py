"""HTML of the web pages: small, self-contained, no template engine and no JavaScript.

Every value is HTML-escaped; ``href`` builds links under the app's mount point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from mirrorscale.policy import format_bytes
from mirrorscale.store.history import TaskSummary
from mirrorscale.store.models import ExecutionTrace, Task
from mirrorscale.web.plots import PlotPoint, forecast_vs_actual_svg
from mirrorscale.web.queries import TaskView, Wastage, wastage

__all__ = ["index_page", "pipeline_page", "task_page", "plot_points"]

Href = Callable[[str], str]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;white-space:nowrap;vertical-align:top}
td.wrap{white-space:normal}tr.detail td{color:#555;padding:0 8px 6px 2em;border-bottom:1px solid #ddd}
tr.detail div{white-space:normal;max-width:calc(100vw - 6em);position:sticky;left:2em}
tr:has(+ tr.detail) td{border-bottom:none}tr.current td,tr.current + tr.detail td{background:#fff6d5}.scroll{overflow-x:auto;max-width:100%}
svg.ms-plot{max-width:100%;height:auto}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.failed td{color:#b00}h1{font-size:20px}h2{font-size:16px;margin-top:1.4em}
.muted{color:#777}a{color:#0a58ca}
"""


def _b(value: float | None) -> str:
    return "" if value is None else format_bytes(int(value))


def _n(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _layout(title: str, body: str, crumbs: Sequence[tuple[str, str | None]] = ()) -> str:
    nav = " / ".join(f'<a href="{escape(h)}">{escape(t)}</a>' if h else escape(t) for t, h in crumbs)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} · mirrorscale</title>"
            f"<style>{_STYLE}</style></head><body><nav class='muted'>{nav}</nav>"
            f"<h1>{escape(title)}</h1>{body}</body></html>")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, row_class: Sequence[str] | None = None,
           numeric: Sequence[int] = (), details: Sequence[str] | None = None, table_id: str = "") -> str:
    """``rows`` (and ``details``) hold already-escaped HTML; cells stay on one line.

    ``details[k]``, when not empty, is shown under row ``k`` across the whole
    width (a decision's reason, a mirror's evidence: long text that must stay
    readable). The table scrolls sideways inside its own box when it is wider
    than the page (an external view's iframe is narrower than Airflow's window).
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_class[k]}"' if row_class and row_class[k] else ""
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
        if details and details[k]:
            body.append(f'<tr class="detail"><td colspan="{len(headers)}"><div>{details[k]}</div></td></tr>')
    ident = f' id="{table_id}"' if table_id else ""
    if not body:
        return f"<p class='muted'{ident}>nothing recorded yet</p>"
    return f"<div class='scroll'><table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _task_link(href: Href, task: Task | TaskSummary, run_id: str | None = None) -> str:
    path = f"/pipelines/{quote(task.pipeline_id, safe='')}/tasks/{quote(task.task_id, safe='')}"
    query = f"?run_id={quote(run_id, safe='')}" if run_id else ""
    return f'<a href="{escape(href(path) + query)}">{escape(task.task_id)}</a>'


def _summary_rows(href: Href, summaries: Sequence[TaskSummary], with_pipeline: bool,
                  run_id: str | None = None) -> list[list[str]]:
    rows = []
    for s in summaries:
        pipeline = f'<a href="{escape(href("/pipelines/" + quote(s.pipeline_id, safe="")))}">{escape(s.pipeline_id)}</a>'
        row = [escape(s.engine), pipeline] if with_pipeline else []
        rows.append(row + [_task_link(href, s, run_id), str(s.runs), str(s.failures), _b(s.mean_peak_rss_bytes),
                           _b(s.max_peak_rss_bytes), _n(s.mean_wall_seconds), _n(s.mean_cpu_seconds)])
    return rows


_SUMMARY_HEADERS = ["task", "runs", "failed", "mean peak", "max peak", "mean wall s", "mean CPU s"]


def index_page(href: Href, summaries: Sequence[TaskSummary]) -> str:
    """Every task with runs."""
    table = _table(["engine", "pipeline", *_SUMMARY_HEADERS], _summary_rows(href, summaries, True),
                   numeric=range(3, 9), table_id="tasks")
    return _layout("mirrorscale: recorded tasks", table, [("mirrorscale", None)])


def pipeline_page(href: Href, pipeline_id: str, summaries: Sequence[TaskSummary], run_id: str | None = None) -> str:
    """The tasks of one pipeline (DAG or flow); ``run_id`` goes along to the task pages."""
    table = _table(_SUMMARY_HEADERS, _summary_rows(href, summaries, False, run_id), numeric=range(1, 7),
                   table_id="tasks")
    return _layout(f"{pipeline_id}", table, [("mirrorscale", href("/")), (pipeline_id, None)])


def plot_points(view: TaskView) -> list[PlotPoint]:
    """One point per recorded run, oldest first."""
    points = []
    for t in view.traces:
        forecast = view.forecast_for(t.run_id)
        points.append(PlotPoint(
            label=t.started_at.strftime("%m-%d %H:%M"), actual=t.peak_rss_bytes,
            forecast=forecast.value if forecast else None, low=forecast.low if forecast else None,
            high=forecast.high if forecast else None, allocated=t.allocated_memory_bytes,
            failed=t.outcome != "success", at=t.started_at,
        ))
    return points


def _run_row(view: TaskView, t: ExecutionTrace) -> list[str]:
    forecast = view.forecast_for(t.run_id)
    error = ""
    if forecast and forecast.value and t.peak_rss_bytes:
        error = f"{(forecast.value - t.peak_rss_bytes) / t.peak_rss_bytes:+.0%}"
    return [escape(t.started_at.strftime("%Y-%m-%d %H:%M:%S")), escape(t.run_id), str(t.try_number),
            escape(t.outcome), _b(t.peak_rss_bytes), _b(forecast.value if forecast else None), error,
            _b(t.allocated_memory_bytes), escape(t.allocated_pool or ""),
            "" if t.allocated_pool_slots is None else str(t.allocated_pool_slots),
            _n(t.cpu_seconds), _n(t.wall_seconds), _b(t.input_size_bytes), escape(t.branch or "")]


def _same_run(row_run: str | None, run_id: str | None) -> bool:
    """Whether a row belongs to ``run_id`` (a mapped index ``run#i`` belongs to its run)."""
    return bool(run_id and row_run and (row_run == run_id or row_run.startswith(run_id + "#")))


def _decision_table(view: TaskView, run_id: str | None) -> str:
    allocations = view.allocations
    return _table(
        ["created", "run", "mode", "applied", "memory", "CPU", "pool", "slots", "priority", "queue", "source"],
        [[escape(a.created_at.strftime("%Y-%m-%d %H:%M:%S")), escape(a.run_id), escape(a.mode),
          "yes" if a.applied else "no", _b(a.memory_bytes), _n(a.cpu), escape(a.pool or ""),
          "" if a.pool_slots is None else str(a.pool_slots),
          "" if a.priority_weight is None else str(a.priority_weight), escape(a.queue or ""), escape(a.source)]
         for a in allocations], numeric=(4, 5, 7, 8), details=[f"why: {escape(a.reason)}" for a in allocations],
        row_class=["current" if _same_run(a.run_id, run_id) else "" for a in allocations], table_id="allocations")


def _shadow_table(view: TaskView, run_id: str | None) -> str:
    shadows = view.shadows
    return _table(
        ["created", "run", "outcome", "sample", "peak (mirror)", "predicted peak", "band"],
        [[escape(s.created_at.strftime("%Y-%m-%d %H:%M:%S")), escape(s.run_id or ""), escape(s.outcome),
          f"{s.sample_fraction:.0%}", _b(s.cost_peak_rss_bytes), _b(s.predicted_peak_rss_bytes),
          f"{_b(s.predicted_peak_rss_low)} – {_b(s.predicted_peak_rss_high)}" if s.predicted_peak_rss_high else ""]
         for s in shadows], details=[escape(s.evidence or "") for s in shadows],
        row_class=["current" if _same_run(s.run_id, run_id) else "" for s in shadows], table_id="shadows")


def _waste_cell(found: Wastage, none: str) -> str:
    if not found.runs:
        return f"<span class='muted'>{escape(none)}</span>"
    maq = "" if found.maq is None else f", MAQ {found.maq:.0%}"
    return (f"{found.wasted_gbh:.3g} GB·h wasted over {found.runs} run(s), {found.under_allocated} "
            f"under-allocated{maq}")


def _status_table(view: TaskView) -> str:
    """Mirror life cycle (volatility, hotspot) and replay-style wastage of the shown runs."""
    state = view.mirror_state
    if state is None:
        mirror = ("<span class='muted'>no mirror decision recorded (mirroring off for this task, or not yet a "
                  "hotspot on the predicted path)</span>")
    else:
        volatility = "" if state.volatility is None else f" · volatility {state.volatility:.2f}"
        mirror = f"<b>{escape(state.state)}</b>{volatility} · {escape(state.reason)}"
    rows = [("mirror", mirror),
            ("wastage, as applied", _waste_cell(wastage(view), "no shown run had an allocation applied")),
            ("wastage, as decided", _waste_cell(wastage(view, decided=True), "no shown run had a decision"))]
    body = "".join(f"<tr><th>{escape(name)}</th><td class='wrap'>{cell}</td></tr>" for name, cell in rows)
    return f"<table id='status'><tbody>{body}</tbody></table>"


def task_page(href: Href, view: TaskView, run_id: str | None = None) -> str:
    """Forecast vs. actual plot, the runs table, allocations with reasons, mirror shadows.

    ``run_id`` (an external view's DAG run) highlights that run's rows.
    """
    task = view.task
    plot = forecast_vs_actual_svg(plot_points(view), title=f"{task.key}: peak memory per run")
    runs = list(reversed(view.traces))  # newest first in the table
    run_class = [" ".join(c for c in ("" if t.outcome == "success" else "failed",
                                      "current" if _same_run(t.run_id, run_id) else "") if c) for t in runs]
    table = _table(
        ["started (UTC)", "run", "try", "outcome", "peak RSS", "forecast", "error", "allocated", "pool", "slots",
         "CPU s", "wall s", "input", "branch"],
        [_run_row(view, t) for t in runs], row_class=run_class,
        numeric=(2, 4, 5, 6, 7, 9, 10, 11, 12), table_id="runs")
    shown = f" · run {escape(run_id)} highlighted" if run_id else ""
    body = (f"<p class='muted'>engine {escape(task.engine)} · {len(view.traces)} run(s) shown{shown}</p>"
            f"{_status_table(view)}<div id='plot'>{plot}</div><h2>Runs</h2>{table}<h2>Allocations</h2>{_decision_table(view, run_id)}"
            f"<h2>Mirror shadows</h2>{_shadow_table(view, run_id)}")
    crumbs = [("mirrorscale", href("/")), (task.pipeline_id, href("/pipelines/" + quote(task.pipeline_id, safe=""))),
              (task.task_id, None)]
    return _layout(task.key, body, crumbs)
