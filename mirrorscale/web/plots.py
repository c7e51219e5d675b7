"""Inline SVG plots for the web pages (no plotting library needed).

:func:`forecast_vs_actual_svg` draws one task's runs over time: the measured
peak (dots and line), the forecast made before each run (dashed, with its
band when known) and what was allocated (step line). Runs that did not
succeed are drawn as red crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PlotPoint", "forecast_vs_actual_svg"]

WIDTH, HEIGHT = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 40
_COLORS = {"actual": "#1f77b4", "forecast": "#ff7f0e", "allocated": "#2ca02c", "failed": "#d62728"}


@dataclass(frozen=True)
class PlotPoint:
    """One run on the plot: its label and values (bytes); ``None`` where unknown."""

    label: str
    actual: float | None
    forecast: float | None = None
    low: float | None = None
    high: float | None = None
    allocated: float | None = None
    failed: bool = False


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
    top = max(values) * 1.1 or 1.0
    factor, unit = _unit(top)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    out = [head, f'<text x="{_LEFT}" y="13" font-weight="bold">{escape(title)}</text>']
    for k in range(5):  # grid and y labels
        v = top * k / 4
        out.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / factor:.3g} {unit}</text>')
    step = max(1, n // 8)
    for i in range(0, n, step):  # x labels
        out.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 22}" text-anchor="middle">{escape(points[i].label)}</text>')
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
    legend = [("actual", "actual peak"), ("forecast", "forecast"), ("allocated", "allocated"), ("failed", "failed run")]
    for k, (name, text) in enumerate(legend):
        lx = _LEFT + k * 130
        out.append(f'<rect x="{lx}" y="{HEIGHT - 12}" width="12" height="4" fill="{_COLORS[name]}"/>'
                   f'<text x="{lx + 16}" y="{HEIGHT - 7}">{text}</text>')
    out.append("</svg>")
    return "".join(out)
