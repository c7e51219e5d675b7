"""The command line shared by the examples: positional integers and ``--mode``.

``--mode observe|recommend|enforce`` sets ``MIRRORSCALE_MODE`` for this process, the
documented switch that overrides every task's policy (the examples' own default is
``recommend``: sized and shown, not applied). Not an example itself.
"""

from __future__ import annotations

import argparse
import os


def parse(doc: str | None, names: list[str], *, many: bool = False) -> list[int]:
    """Parse ``sys.argv``: up to ``len(names)`` integers (any number with ``many``) and ``--mode``."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    if many:
        parser.add_argument(names[0], type=int, nargs="*")
    else:
        for name in names:
            parser.add_argument(name, type=int, nargs="?")
    parser.add_argument("--mode", choices=["observe", "recommend", "enforce"],
                        help="every task's mode for this run (sets MIRRORSCALE_MODE); default: each task's policy")
    args = parser.parse_args()
    if args.mode:
        os.environ["MIRRORSCALE_MODE"] = args.mode
    if many:
        return list(getattr(args, names[0]))
    values = [getattr(args, name) for name in names]
    return [v for v in values if v is not None]
