"""Inline SVG plots for the web pages (no plotting library needed).

:func:`forecast_vs_actual_svg` draws one task's runs over time: the measured
peak (dots and line), the forecast made before each run (dashed, with its
band when known) and what was allocated (step line). Runs that did not
succeed are drawn as red crosses. Runs are spaced evenly; their start times
label the x axis in a format fitting the time the runs span
(:func:`time_labels`: clock times within a day, dates with times within a
few days, dates beyond), with the date or year the labels leave out in the
axis caption (times in UTC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

__all__ = ["PlotPoint", "forecast_vs_actual_svg", "time_labels"]

WIDTH, HEIGHT = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 40
_COLORS = {"actual": "#1f77b4", "forecast": "#ff7f0e", "allocated": "#2ca02c", "failed": "#d62728"}


@dataclass(frozen=True)
class PlotPoint:
    """One run on the plot: its label (or start time ``at``) and values (bytes); ``None`` where unknown."""

    label: str
    actual: float | None
    forecast: float | None = None
    low: float | None = None
    high: float | None = None
    allocated: float | None = None
    failed: bool = False
    at: datetime | None = None


def time_labels(times: Sequence[datetime]) -> tuple[list[str], str]:
    """Tick labels for ``times`` (one each) and the axis caption naming what they leave out.

    =====================  ======================  ==========================
    runs span              label                   caption
    =====================  ======================  ==========================
    < 10 minutes, one day  ``14:05:09``            ``UTC, 2026-11-27``
    < 1 day, one day       ``14:05``               ``UTC, 2026-11-27``
    < 1 day, two days      ``27 Nov 23:55``        ``UTC, 2026``
    < 4 days               ``27 Nov 14:05``        ``UTC, 2026``
    < 1 year, one year     ``27 Nov``              ``UTC, 2026``
    longer                 ``2026-11-27``          ``UTC``
    =====================  ======================  ==========================
    """
    if not times:
        return [], "UTC"
    first, last = min(times), max(times)
    span = last - first
    years = f"{first:%Y}" if first.year == last.year else f"{first:%Y}\u2013{last:%Y}"
    if first.date() == last.date():
        fmt = "%H:%M:%S" if span < timedelta(minutes=10) else "%H:%M"
        return [t.strftime(fmt) for t in times], f"UTC, {first:%Y-%m-%d}"
    if span < timedelta(days=4):
        return [t.strftime("%d %b %H:%M") for t in times], f"UTC, {years}"
    if first.year == last.year:
        return [t.strftime("%d %b") for t in times], f"UTC, {years}"
    return [t.strftime("%Y-%m-%d") for t in times], "UTC"


def _ticks(labels: Sequence[str], n_max: int = 8) -> list[int]:
    """Indices to label: about ``n_max`` evenly spread, always the last, never the same text twice in a row."""
    n = len(labels)
    step = max(1, -(-n // n_max))
    chosen = list(range(0, n, step))
    if n > 1 and chosen[-1] != n - 1:
        if n - 1 - chosen[-1] < step / 2:
            chosen.pop()
        chosen.append(n - 1)
    out: list[int] = []
    for i in chosen:
        if not out or labels[i] != labels[out[-1]]:
            out.append(i)
    return out


def _nice_step(top: float, intervals: int = 5) -> float:
    """A round grid step (1, 2, 2.5 or 5 times a power of ten) giving at most about ``intervals`` intervals."""
    raw = top / intervals
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _legend(points: Sequence[PlotPoint]) -> str:
    """Legend entries for the series the plot actually draws."""
    shown = [("actual", "actual peak", any(p.actual is not None and not p.failed for p in points)),
             ("forecast", "forecast", any(p.forecast is not None for p in points)),
             ("allocated", "allocated", any(p.allocated is not None for p in points)),
             ("failed", "failed run", any(p.failed and p.actual is not None for p in points))]
    out, lx = [], _LEFT
    for name, text, present in shown:
        if present:
            out.append(f'<rect x="{lx}" y="{HEIGHT - 12}" width="12" height="4" fill="{_COLORS[name]}"/>'
                       f'<text x="{lx + 16}" y="{HEIGHT - 7}" class="ms-legend">{text}</text>')
            lx += 16 + 7 * len(text) + 24
    return "".join(out)


def _unit(top: float) -> tuple[float, str]:
    for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if top >= factor:
            return float(factor), name
    return 1.0, "B"


def _path(points: list[tuple[float, float]], *, step: bool = False) -> str:
    if not points:
        return ""
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x0, y0), (x, y) in zip(points, points[1:]):
        if step:
            parts.append(f"L{x:.1f},{y0:.1f}")
        parts.append(f"L{x:.1f},{y:.1f}")
    return " ".join(parts)


def forecast_vs_actual_svg(points: Sequence[PlotPoint], *, title: str = "peak memory per run") -> str:
    """An ``<svg>`` element (a string) comparing forecast, allocation and actual peak per run."""
    values = [v for p in points for v in (p.actual, p.forecast, p.high, p.allocated) if v is not None]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" class="ms-plot" '
            'font-family="sans-serif" font-size="11">')
    if not values:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no runs recorded yet</text></svg>'
    factor, unit = _unit(max(values) * 1.05 or 1.0)
    step = _nice_step(max(values) * 1.05 / factor or 1.0) * factor
    top = step * math.ceil(max(values) * 1.05 / step)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    out = [head, f'<text x="{_LEFT}" y="13" font-weight="bold">{escape(title)}</text>']
    for k in range(round(top / step) + 1):  # grid and y labels at round values
        v = step * k
        out.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / factor:.4g} {unit}</text>')
    if all(p.at is not None for p in points):
        labels, caption = time_labels([p.at for p in points])  # type: ignore[misc]
    else:
        labels, caption = [p.label for p in points], ""
    for i in _ticks(labels):  # x ticks and labels (the last one ends at the plot's edge)
        anchor = "end" if n > 1 and i == n - 1 else "middle"
        out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h + 4}" '
                   f'stroke="#999"/><text x="{x(i):.1f}" y="{HEIGHT - 24}" text-anchor="{anchor}" '
                   f'class="ms-tick">{escape(labels[i])}</text>')
    if caption:
        out.append(f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 7}" text-anchor="end" fill="#777" '
                   f'class="ms-caption">{escape(caption)}</text>')
    band = [(x(i), y(p.high)) for i, p in enumerate(points) if p.high is not None and p.low is not None]
    band_low = [(x(i), y(p.low)) for i, p in enumerate(points) if p.high is not None and p.low is not None]
    if band:
        poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in band + band_low[::-1])
        out.append(f'<polygon points="{poly}" fill="{_COLORS["forecast"]}" fill-opacity="0.15" class="ms-band"/>')
    series = (("allocated", True, ""), ("forecast", False, ' stroke-dasharray="6 4"'), ("actual", False, ""))
    for name, is_step, dash in series:
        pts = [(x(i), y(getattr(p, name))) for i, p in enumerate(points) if getattr(p, name) is not None]
        if pts:
            out.append(f'<path d="{_path(pts, step=is_step)}" fill="none" stroke="{_COLORS[name]}" '
                       f'stroke-width="2"{dash} class="ms-{name}"/>')
    for i, p in enumerate(points):
        if p.actual is None:
            continue
        cx, cy = x(i), y(p.actual)
        if p.failed:
            out.append(f'<path d="M{cx - 4:.1f},{cy - 4:.1f} L{cx + 4:.1f},{cy + 4:.1f} M{cx - 4:.1f},{cy + 4:.1f} '
                       f'L{cx + 4:.1f},{cy - 4:.1f}" stroke="{_COLORS["failed"]}" stroke-width="2"/>')
        else:
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{_COLORS["actual"]}"/>')
    for i, p in enumerate(points):  # forecast markers: a lone forecast has no line to show it
        if p.forecast is not None:
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(p.forecast):.1f}" r="2.5" fill="#fff" '
                       f'stroke="{_COLORS["forecast"]}" stroke-width="1.5"/>')
    out.append(_legend(points))
    out.append("</svg>")
    return "".join(out)
