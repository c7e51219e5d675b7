"""``python -m mirrorscale.demo``: see :mod:`mirrorscale.demo.cli`."""

from __future__ import annotations

from mirrorscale.demo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
