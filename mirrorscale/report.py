"""A self-contained HTML report: text, tables and figures in one file, with no external assets.

Figures are inline SVG (e.g. :func:`mirrorscale.web.plots.forecast_vs_actual_svg`) or
PNG images embedded as ``data:`` URIs (:func:`png_data_uri` renders a matplotlib
figure), and the style sheet is inline, so the file can be mailed, archived or opened
offline::

    report = HtmlReport("mirrorscale demo")
    report.paragraph("What ran and how it went.")
    report.table(["pipeline", "OOM kills"], [["growing-etl", "2 -> 0"]])
    report.figure_svg(svg, caption="forecast vs. actual")
    report.write(Path("report.html"))

Every text and table cell is HTML-escaped; only SVG produced by mirrorscale's own
plotting code (which escapes its labels) is inserted as markup.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["HtmlReport", "png_data_uri"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img, svg { max-width: 100%; height: auto; } .note { color: #555; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def png_data_uri(figure: Any, *, dpi: int = 100) -> str:
    """A matplotlib ``figure`` as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class HtmlReport:
    """Builds one self-contained HTML page, part by part, in order."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        """A section heading."""
        self.parts.append(f"<h2>{escape(text)}</h2>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        """A paragraph of plain text (escaped); ``note`` sets it in smaller grey type."""
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{escape(text)}</p>")

    def bullets(self, items: Sequence[str]) -> None:
        """A bulleted list of plain-text items."""
        self.parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table of plain-text cells."""
        head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure_svg(self, svg: str, *, caption: str) -> None:
        """An inline ``<svg>`` figure (markup from mirrorscale's own plotting code) with a caption."""
        if not svg.lstrip().startswith("<svg"):
            raise ValueError("figure_svg expects an <svg> element")
        self.parts.append(f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>")

    def figure_png(self, data_uri: str, *, caption: str, alt: str = "") -> None:
        """A PNG figure from a ``data:image/png;base64`` URI (see :func:`png_data_uri`)."""
        if not data_uri.startswith("data:image/png;base64,"):
            raise ValueError("figure_png expects a data:image/png;base64 URI (no external images)")
        self.parts.append(f'<figure><img src="{data_uri}" alt="{escape(alt or caption)}">'
                          f"<figcaption>{escape(caption)}</figcaption></figure>")

    def html(self) -> str:
        """The whole page."""
        made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{escape(self.title)}</h1><p class=\"note\">written {made}</p>"
                + "\n".join(self.parts) + "</body></html>\n")

    def write(self, path: Path) -> Path:
        """Write the page to ``path`` (parents created); returns the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path
