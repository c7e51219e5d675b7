"""``mirrorscale preview MODULE:FUNC --arg ...``: try a mirror by hand and see its shadow."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from mirrorscale.cli.app import app, console, fail, print_json, print_table

_BYTES = ("sampled_input_bytes", "full_input_bytes", "cost_peak_rss_bytes", "measured_peak_rss_increase_bytes",
          "predicted_peak_rss_bytes", "predicted_peak_rss_low", "predicted_peak_rss_high")


def parse_value(raw: str) -> Any:
    """A command-line value: ``@file.json`` is read as JSON, else JSON if it parses, else the string."""
    if raw.startswith("@"):
        return json.loads(Path(raw[1:]).read_text())
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _kwargs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise fail(f"--kwarg {item!r}: write it as NAME=VALUE")
        out[name] = parse_value(raw)
    return out


def _shadow_dict(shadow: Any) -> dict[str, Any]:
    """The shadow's columns (no ids) as plain values."""
    skip = {"id", "task_pk"}
    return {c.key: getattr(shadow, c.key) for c in shadow.__table__.columns if c.key not in skip}


def _show(row: dict[str, Any]) -> None:
    from mirrorscale.policy import format_bytes

    shown = {k: (format_bytes(v) if k in _BYTES and v is not None else v) for k, v in row.items() if k != "evidence"}
    for key in ("cost_cpu_seconds", "cost_wall_seconds", "predicted_cpu_seconds", "predicted_cpu_low",
                "predicted_cpu_high", "predicted_wall_seconds", "predicted_wall_low", "predicted_wall_high"):
        if shown.get(key) is not None:
            shown[key] = f"{shown[key]:.3f} s"
    print_table("resource shadow", [{"field": k, "value": v} for k, v in shown.items()])
    evidence = json.loads(row["evidence"] or "{}")
    console.print(f"evidence: {evidence.get('summary', '')}", highlight=False, soft_wrap=True)


@app.command("preview")
def preview_command(
    target: str = typer.Argument(..., metavar="MODULE:FUNC", help="An importable module-level callable."),
    arg: list[str] = typer.Option([], "--arg", help="A positional argument (JSON, @file.json or a string); repeat."),
    kwarg: list[str] = typer.Option([], "--kwarg", help="A keyword argument NAME=VALUE; repeat."),
    sample_fraction: float = typer.Option(0.05, "--sample-fraction", help="Fraction of the input a mirror gets."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds one mirror may run."),
    memory_cap: str = typer.Option(None, "--memory-cap", help="RSS increase one mirror may use, e.g. 512MiB."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    niceness: int = typer.Option(10, "--niceness", help="Added to the mirror's CPU niceness."),
    save: str = typer.Option(None, "--save", metavar="ENGINE:PIPELINE:TASK", help="Store the shadow for this task."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Mirror MODULE:FUNC on a sample of the given arguments and print its resource shadow."""
    from mirrorscale.mirror import MirrorError, preview

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the current directory import
    args = [parse_value(a) for a in arg]
    try:
        shadow = preview(target, args, _kwargs(kwarg), sample_fraction=sample_fraction, timeout=timeout,
                         memory_cap=memory_cap, seed=seed, niceness=niceness)
    except (MirrorError, ValueError) as exc:
        raise fail(str(exc)) from None
    if save:
        key = tuple(save.split(":"))
        if len(key) != 3 or not all(key):
            raise fail(f"--save {save!r}: write it as ENGINE:PIPELINE:TASK, e.g. airflow:etl:transform")
        from mirrorscale.store.history import HistoryStore

        HistoryStore.open().save(key, shadow)  # type: ignore[arg-type]
    row = _shadow_dict(shadow)
    if as_json:
        print_json({**row, "evidence": json.loads(row["evidence"] or "null")})
    else:
        _show(row)
    if shadow.outcome != "ok":
        raise typer.Exit(3)
