"""``mirrorscale policy check``: load a policy file and show what every pattern resolves to."""

from __future__ import annotations

from pathlib import Path

import typer

from mirrorscale.cli.app import app, console, fail, print_json, print_table
from mirrorscale.policy import PolicyError, load_policies

policy_app = typer.Typer(help="Check per-task policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

_COLUMNS = ["pattern", "mode", "mirror", "sample_fraction", "headroom", "memory_min", "memory_max",
            "cpu_min", "cpu_max", "pool", "pool_slot_memory", "priority_min", "priority_max", "queue", "sets"]


@policy_app.command("check")
def check(
    file: Path = typer.Argument(None, help="mirrorscale.toml or pyproject.toml (default: the usual lookup)."),
    task: str = typer.Option(None, "--task", help="Also resolve the policy of one task, as pipeline_id.task_id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Validate a policy file; print each pattern and the policy it resolves to."""
    try:
        policies = load_policies(file)
        resolved = None
        if task:
            pipeline_id, _, task_id = task.partition(".")
            if not task_id:
                raise fail(f"--task {task!r}: write it as pipeline_id.task_id, e.g. etl_daily.transform")
            resolved = policies.for_task(pipeline_id, task_id).model_dump(mode="json")
    except PolicyError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json({"source": policies.source, "rules": policies.rows(), "task": resolved})
        return
    console.print(f"policy source: {policies.source or 'built-in defaults'}")
    rows = [{**row, "sets": ", ".join(row["sets"])} for row in policies.rows(human=True)]
    print_table("policies", rows, _COLUMNS)
    if resolved is not None:
        print_table(f"resolved policy of {task}", [{"field": k, "value": v} for k, v in resolved.items()])
